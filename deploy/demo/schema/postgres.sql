-- Langfuse-like operational tables: who may do what. Foreign keys, indexes, an enum, a sequence,
-- jsonb, timestamptz and text[] — the shapes a PostgreSQL backup must get exactly right.

DO $$ BEGIN
    CREATE TYPE role AS ENUM ('OWNER', 'ADMIN', 'MEMBER', 'VIEWER', 'NONE');
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;

CREATE TABLE IF NOT EXISTS users (
    id             text PRIMARY KEY,
    name           text,
    email          text UNIQUE,
    email_verified timestamptz,
    password       text,
    image          text,
    admin          boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS organizations (
    id           text PRIMARY KEY,
    name         text NOT NULL,
    cloud_config jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS organization_memberships (
    id         text PRIMARY KEY,
    org_id     text NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    user_id    text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       role NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_id, user_id)
);
CREATE INDEX IF NOT EXISTS organization_memberships_user_id_idx ON organization_memberships (user_id);

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

CREATE TABLE IF NOT EXISTS prompts (
    id         text PRIMARY KEY,
    project_id text NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name       text NOT NULL,
    version    integer NOT NULL,
    prompt     jsonb NOT NULL,
    config     jsonb NOT NULL DEFAULT '{}',
    labels     text[] NOT NULL DEFAULT '{}',
    tags       text[] NOT NULL DEFAULT '{}',
    created_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (project_id, name, version)
);

CREATE TABLE IF NOT EXISTS score_configs (
    id          text PRIMARY KEY,
    project_id  text NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name        text NOT NULL,
    data_type   text NOT NULL CHECK (data_type IN ('NUMERIC', 'CATEGORICAL', 'BOOLEAN')),
    min_value   double precision,
    max_value   double precision,
    categories  jsonb,
    is_archived boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE SEQUENCE IF NOT EXISTS audit_log_id_seq;
CREATE TABLE IF NOT EXISTS audit_logs (
    id            bigint PRIMARY KEY DEFAULT nextval('audit_log_id_seq'),
    created_at    timestamptz NOT NULL DEFAULT now(),
    user_id       text REFERENCES users (id) ON DELETE SET NULL,
    org_id        text NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    project_id    text REFERENCES projects (id) ON DELETE CASCADE,
    resource_type text NOT NULL,
    resource_id   text NOT NULL,
    action        text NOT NULL,
    before        jsonb,
    after         jsonb
);
ALTER SEQUENCE audit_log_id_seq OWNED BY audit_logs.id;
CREATE INDEX IF NOT EXISTS audit_logs_project_id_created_at_idx ON audit_logs (project_id, created_at);
