-- The export-file records of the blob storage integration.
CREATE TABLE IF NOT EXISTS blob_storage_file_log {{cluster}} (
    id String,
    project_id String,
    entity_type String,
    entity_id String,
    event_id String,
    bucket_name String,
    bucket_path String,
    created_at DateTime,
    updated_at DateTime,
    event_ts DateTime,
    is_deleted UInt8
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{{database}}/blob_storage_file_log', '{replica}', event_ts)
PARTITION BY toYYYYMM(created_at)
ORDER BY (project_id, entity_type, entity_id, event_id);
