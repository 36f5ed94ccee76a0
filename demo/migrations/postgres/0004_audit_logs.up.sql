-- A standalone sequence owned by the column, rather than serial: its current value is state a
-- backup must carry over, apart from the rows.
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
