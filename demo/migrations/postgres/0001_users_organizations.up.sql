-- Langfuse-like operational tables: who may do what. Across the files: foreign keys, indexes,
-- an enum, a sequence, jsonb, timestamptz and text[], the shapes a PostgreSQL backup must get
-- exactly right. IF NOT EXISTS (and the DO block for the enum, which has no such clause) lets a
-- database that holds these tables from before the migrations (an older demo seed) take them
-- as they are.

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
