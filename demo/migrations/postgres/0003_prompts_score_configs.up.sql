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
