-- Langfuse v4's observation store, in the project's own words: events_full holds every span
-- with its full input and output, events_core a lighter copy the materialized view events_core_mv
-- fills on every insert into events_full, and observations_batch_staging the rows ingestion
-- writes before they are propagated. What a backup must carry is all here: ReplacingMergeTree
-- with a version and a delete flag, a PRIMARY KEY shorter than the ORDER BY, SAMPLE BY, the
-- block number and offset columns that lightweight updates and deletes need (they write patch
-- parts), text indexes beside bloom-filter and ngram skip indexes, MATERIALIZED and ALIAS
-- columns, Decimal maps, ZSTD codecs, and a path to each row's raw event object in blob storage.
--
-- enable_full_text_index is a query-level setting on ClickHouse 26.x, not a MergeTree one:
-- given in CREATE TABLE's SETTINGS it lets this statement create text indexes on servers where
-- they are still gated, and the server does not store it with the table.

CREATE TABLE IF NOT EXISTS events_full (
    project_id String,
    trace_id String,
    span_id String,
    parent_span_id String,
    start_time DateTime64(6),
    end_time Nullable(DateTime64(6)),
    name String,
    type LowCardinality(String),
    environment LowCardinality(String) DEFAULT 'default',
    level LowCardinality(String),
    status_message String,
    user_id String,
    session_id String,
    tags Array(String),
    bookmarked Bool DEFAULT false,
    public Bool DEFAULT false,
    provided_model_name String,
    model_parameters String,
    usage_details Map(LowCardinality(String), UInt64),
    cost_details Map(LowCardinality(String), Decimal(18, 12)),
    total_cost Decimal(18, 12) ALIAS cost_details['total'],
    input_cost Decimal(18, 12) MATERIALIZED arraySum(mapValues(mapFilter((k, v) -> k LIKE '%input%', cost_details))),
    input String CODEC(ZSTD(3)),
    output String CODEC(ZSTD(3)),
    input_length UInt64 MATERIALIZED lengthUTF8(input),
    output_length UInt64 MATERIALIZED lengthUTF8(output),
    metadata_names Array(String),
    metadata_values Array(String),
    blob_storage_file_path String,
    event_bytes UInt64,
    created_at DateTime64(6) DEFAULT now64(6),
    updated_at DateTime64(6) DEFAULT now64(6),
    event_ts DateTime64(6),
    is_deleted UInt8,
    INDEX idx_span_id span_id TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_trace_id trace_id TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_session_id session_id TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_name name TYPE ngrambf_v1(3, 1024, 2, 0) GRANULARITY 1,
    INDEX idx_updated_at updated_at TYPE minmax GRANULARITY 1,
    INDEX idx_text_input input TYPE text(tokenizer = splitByNonAlpha),
    INDEX idx_text_output output TYPE text(tokenizer = splitByNonAlpha)
) ENGINE = ReplacingMergeTree(event_ts, is_deleted)
PARTITION BY toYYYYMM(start_time)
PRIMARY KEY (project_id, toStartOfMinute(start_time), xxHash32(trace_id))
ORDER BY (project_id, toStartOfMinute(start_time), xxHash32(trace_id), span_id, start_time)
SAMPLE BY xxHash32(trace_id)
SETTINGS enable_block_number_column = 1, enable_block_offset_column = 1, enable_full_text_index = 1;

-- The same rows with their input and output cut to 200 characters, for list views.
CREATE TABLE IF NOT EXISTS events_core (
    project_id String,
    trace_id String,
    span_id String,
    parent_span_id String,
    start_time DateTime64(6),
    end_time Nullable(DateTime64(6)),
    name String,
    type LowCardinality(String),
    environment LowCardinality(String) DEFAULT 'default',
    level LowCardinality(String),
    status_message String,
    user_id String,
    session_id String,
    tags Array(String),
    bookmarked Bool DEFAULT false,
    public Bool DEFAULT false,
    provided_model_name String,
    usage_details Map(LowCardinality(String), UInt64),
    cost_details Map(LowCardinality(String), Decimal(18, 12)),
    total_cost Decimal(18, 12) ALIAS cost_details['total'],
    input String,
    output String,
    blob_storage_file_path String,
    event_bytes UInt64,
    created_at DateTime64(6) DEFAULT now64(6),
    updated_at DateTime64(6) DEFAULT now64(6),
    event_ts DateTime64(6),
    is_deleted UInt8,
    INDEX idx_span_id span_id TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_trace_id trace_id TYPE bloom_filter(0.01) GRANULARITY 1
) ENGINE = ReplacingMergeTree(event_ts, is_deleted)
PARTITION BY toYYYYMM(start_time)
PRIMARY KEY (project_id, toStartOfMinute(start_time), xxHash32(trace_id))
ORDER BY (project_id, toStartOfMinute(start_time), xxHash32(trace_id), span_id, start_time)
SAMPLE BY xxHash32(trace_id)
SETTINGS enable_block_number_column = 1, enable_block_offset_column = 1;

CREATE MATERIALIZED VIEW IF NOT EXISTS events_core_mv TO events_core AS
SELECT
    project_id, trace_id, span_id, parent_span_id, start_time, end_time, name, type, environment,
    level, status_message, user_id, session_id, tags, bookmarked, public, provided_model_name,
    usage_details, cost_details,
    leftUTF8(input, 200) AS input,
    leftUTF8(output, 200) AS output,
    blob_storage_file_path, event_bytes, created_at, updated_at, event_ts, is_deleted
FROM events_full;

-- Ingestion's staging rows, cut into 3-minute partitions that the propagation job reads whole
-- and the TTL drops whole (ttl_only_drop_parts). Langfuse keeps them for hours; the demo's rows
-- are dated from the seed's start so that a seed always gives the same rows, and a TTL that
-- short would empty the table at its first merge, so this one keeps them for years: the table
-- has a TTL, which is what a backup and a restore must keep.
CREATE TABLE IF NOT EXISTS observations_batch_staging (
    id String,
    trace_id String,
    project_id String,
    type LowCardinality(String),
    start_time DateTime64(3),
    name String,
    metadata Map(LowCardinality(String), String),
    input Nullable(String) CODEC(ZSTD(3)),
    output Nullable(String) CODEC(ZSTD(3)),
    cost_details Map(LowCardinality(String), Decimal(18, 12)),
    environment LowCardinality(String) DEFAULT 'default',
    s3_first_seen_timestamp DateTime64(3),
    event_ts DateTime64(3),
    is_deleted UInt8
) ENGINE = ReplacingMergeTree(event_ts, is_deleted)
PARTITION BY toStartOfInterval(s3_first_seen_timestamp, INTERVAL 3 MINUTE)
ORDER BY (project_id, toDate(s3_first_seen_timestamp), trace_id, id)
TTL toDateTime(s3_first_seen_timestamp) + INTERVAL 5 YEAR
SETTINGS ttl_only_drop_parts = 1;
