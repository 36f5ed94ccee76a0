-- The 13 ClickHouse objects of Langfuse's architecture, in SQL that ClickHouse 18.16 accepts:
-- no Map (parallel key/value arrays instead), no DateTime64 (DateTime), no Bool (UInt8), and
-- ReplacingMergeTree with a version column only (no is_deleted argument).
-- {{db}} is the database; {{cluster}} expands to "ON CLUSTER <name>" or to nothing.
-- {shard} and {replica} are ClickHouse macros from each server's <macros>.

CREATE DATABASE IF NOT EXISTS {{db}} {{cluster}};

CREATE TABLE IF NOT EXISTS {{db}}.traces {{cluster}} (
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
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{{db}}/traces', '{replica}', event_ts)
PARTITION BY toYYYYMM(timestamp)
ORDER BY (project_id, toDate(timestamp), id);

CREATE TABLE IF NOT EXISTS {{db}}.observations {{cluster}} (
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
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{{db}}/observations', '{replica}', event_ts)
PARTITION BY toYYYYMM(start_time)
ORDER BY (project_id, type, toDate(start_time), id);

CREATE TABLE IF NOT EXISTS {{db}}.scores {{cluster}} (
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
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{{db}}/scores', '{replica}', event_ts)
PARTITION BY toYYYYMM(timestamp)
ORDER BY (project_id, toDate(timestamp), name, id);

CREATE TABLE IF NOT EXISTS {{db}}.blob_storage_file_log {{cluster}} (
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
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{{db}}/blob_storage_file_log', '{replica}', event_ts)
PARTITION BY toYYYYMM(created_at)
ORDER BY (project_id, entity_type, entity_id, event_id);

CREATE TABLE IF NOT EXISTS {{db}}.project_environments {{cluster}} (
    project_id String,
    environments AggregateFunction(groupUniqArray, String)
) ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/{{db}}/project_environments', '{replica}')
ORDER BY project_id;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.project_environments_traces_mv {{cluster}}
TO {{db}}.project_environments AS
SELECT project_id, groupUniqArrayState(environment) AS environments FROM {{db}}.traces GROUP BY project_id;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.project_environments_observations_mv {{cluster}}
TO {{db}}.project_environments AS
SELECT project_id, groupUniqArrayState(environment) AS environments FROM {{db}}.observations GROUP BY project_id;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.project_environments_scores_mv {{cluster}}
TO {{db}}.project_environments AS
SELECT project_id, groupUniqArrayState(environment) AS environments FROM {{db}}.scores GROUP BY project_id;

CREATE VIEW IF NOT EXISTS {{db}}.analytics_traces {{cluster}} AS
SELECT project_id, toStartOfHour(timestamp) AS hour, count() AS count_all, uniq(user_id) AS distinct_users
FROM {{db}}.traces GROUP BY project_id, hour;

CREATE VIEW IF NOT EXISTS {{db}}.analytics_observations {{cluster}} AS
SELECT project_id, toStartOfHour(start_time) AS hour, count() AS count_all, sum(total_cost) AS total_cost
FROM {{db}}.observations GROUP BY project_id, hour;

CREATE VIEW IF NOT EXISTS {{db}}.analytics_scores {{cluster}} AS
SELECT project_id, toStartOfHour(timestamp) AS hour, count() AS count_all, avg(value) AS avg_value
FROM {{db}}.scores GROUP BY project_id, hour;

CREATE TABLE IF NOT EXISTS {{db}}.schema_migrations {{cluster}} (
    version Int64,
    dirty UInt8,
    sequence UInt64
) ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{{db}}/schema_migrations', '{replica}')
ORDER BY sequence;

-- Local to each server, not replicated: every replica keeps its own log.
CREATE TABLE IF NOT EXISTS {{db}}.event_log {{cluster}} (
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
