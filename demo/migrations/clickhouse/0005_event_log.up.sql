-- Local to each server, not replicated: every replica keeps its own log, so a backup must take
-- it from each of them.
CREATE TABLE IF NOT EXISTS event_log {{cluster}} (
    id String,
    project_id String,
    entity_type String,
    entity_id String,
    bucket_name String,
    bucket_path String,
    created_at DateTime,
    updated_at DateTime
) ENGINE = MergeTree
PARTITION BY toYYYYMM(created_at)
ORDER BY (project_id, entity_type, entity_id, created_at);
