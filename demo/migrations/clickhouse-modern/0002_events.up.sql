-- Raw ingestion events as a semi-structured JSON column (ClickHouse >= 25.3 without a setting),
-- keyed by UUID: the types Langfuse's newer tables and an operator's own tables add.
CREATE TABLE IF NOT EXISTS events (
    id UUID,
    project_id LowCardinality(String),
    timestamp DateTime64(3),
    body JSON,
    attributes Map(LowCardinality(String), String),
    is_deleted Bool DEFAULT false
) ENGINE = MergeTree
PARTITION BY toYYYYMM(timestamp)
ORDER BY (project_id, timestamp, id);
