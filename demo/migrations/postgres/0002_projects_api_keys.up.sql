CREATE TABLE IF NOT EXISTS projects (
    id             text PRIMARY KEY,
    org_id         text NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name           text NOT NULL,
    retention_days integer,
    metadata       jsonb,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    deleted_at     timestamptz
);
CREATE INDEX IF NOT EXISTS projects_org_id_idx ON projects (org_id);

CREATE TABLE IF NOT EXISTS api_keys (
    id                 text PRIMARY KEY,
    public_key         text NOT NULL UNIQUE,
    hashed_secret_key  text NOT NULL UNIQUE,
    display_secret_key text NOT NULL,
    note               text,
    project_id         text NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    scopes             text[] NOT NULL DEFAULT '{}',
    created_at         timestamptz NOT NULL DEFAULT now(),
    last_used_at       timestamptz,
    expires_at         timestamptz
);
CREATE INDEX IF NOT EXISTS api_keys_project_id_idx ON api_keys (project_id);
