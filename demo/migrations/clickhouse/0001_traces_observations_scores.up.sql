-- Langfuse's three core tables, in SQL that ClickHouse 18.16 accepts: no Map (parallel key/value
-- arrays instead), no DateTime64 (DateTime), no Bool (UInt8), and ReplacingMergeTree with a
-- version column only (no is_deleted argument).
-- {{cluster}} becomes ON CLUSTER <name> or nothing; {{database}} puts this database in each
-- ZooKeeper path, so that every database has replication groups of its own; {shard} and
-- {replica} are each server's macros. IF NOT EXISTS lets a database that holds these tables
-- from before the migrations (an older demo seed) take them as they are.

CREATE TABLE IF NOT EXISTS traces {{cluster}} (
    id String,
    timestamp DateTime,
    name String,
    user_id Nullable(String),
    metadata_keys Array(String),
    metadata_values Array(String),
    release Nullable(String),
    version Nullable(String),
    project_id String,
    environment String,
    public UInt8,
    bookmarked UInt8,
    tags Array(String),
    input Nullable(String),
    output Nullable(String),
    session_id Nullable(String),
    created_at DateTime,
    updated_at DateTime,
    event_ts DateTime,
    is_deleted UInt8
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{{database}}/traces', '{replica}', event_ts)
PARTITION BY toYYYYMM(timestamp)
ORDER BY (project_id, toDate(timestamp), id);

CREATE TABLE IF NOT EXISTS observations {{cluster}} (
    id String,
    trace_id String,
    project_id String,
    environment String,
    type String,
    parent_observation_id Nullable(String),
    start_time DateTime,
    end_time Nullable(DateTime),
    name String,
    metadata_keys Array(String),
    metadata_values Array(String),
    level String,
    status_message Nullable(String),
    version Nullable(String),
    input Nullable(String),
    output Nullable(String),
    provided_model_name Nullable(String),
    model_parameters Nullable(String),
    usage_details_keys Array(String),
    usage_details_values Array(UInt64),
    cost_details_keys Array(String),
    cost_details_values Array(Float64),
    total_cost Nullable(Float64),
    completion_start_time Nullable(DateTime),
    prompt_name Nullable(String),
    prompt_version Nullable(UInt16),
    created_at DateTime,
    updated_at DateTime,
    event_ts DateTime,
    is_deleted UInt8
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{{database}}/observations', '{replica}', event_ts)
PARTITION BY toYYYYMM(start_time)
ORDER BY (project_id, type, toDate(start_time), id);

CREATE TABLE IF NOT EXISTS scores {{cluster}} (
    id String,
    timestamp DateTime,
    project_id String,
    environment String,
    trace_id String,
    observation_id Nullable(String),
    name String,
    value Float64,
    source String,
    comment Nullable(String),
    author_user_id Nullable(String),
    config_id Nullable(String),
    data_type String,
    string_value Nullable(String),
    created_at DateTime,
    updated_at DateTime,
    event_ts DateTime,
    is_deleted UInt8
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{{database}}/scores', '{replica}', event_ts)
PARTITION BY toYYYYMM(timestamp)
ORDER BY (project_id, toDate(timestamp), name, id);
