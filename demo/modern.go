package demo

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/tracevault/tracevault/config"
	mch "github.com/tracevault/tracevault/migrate/clickhouse"
	chsnap "github.com/tracevault/tracevault/snapshot/clickhouse"
)

// ModernTables are the tables of the modern demo schema (migrations/clickhouse-modern) that
// hold rows, in the order they are filled: Langfuse v3's tables that v4 keeps, then v4's
// events_full, events_core (which events_core_mv fills from events_full) and the staging table.
var ModernTables = []string{"traces", "observations", "scores", "events", "events_full", "events_core", "observations_batch_staging"}

// modernMigrations is the directory, under migrations/, of the schema for one modern ClickHouse
// (>= 25.7: lightweight updates, text indexes).
const modernMigrations = "clickhouse-modern"

// seedModernClickHouse applies the modern migration set to a single server and fills its tables
// with rows the server generates itself (INSERT ... SELECT FROM numbers): every value is a hash
// of the row number and the seed, so the same seed gives the same rows, and the generators
// reach the modern column types (Map, Decimal64, Nullable(DateTime64), JSON, UUID) without a
// client-side encoder for each.
func seedModernClickHouse(ctx context.Context, o Options, rows map[string]int64) error {
	if len(o.ClickHouse) != 1 || o.Cluster != "" {
		return fmt.Errorf("demo seed --modern: the modern schema is for one server without a cluster (replicated tables need Keeper); got %d addresses, cluster %q", len(o.ClickHouse), o.Cluster)
	}
	if len(o.ClickHouseHTTP) == 0 {
		return fmt.Errorf("demo seed --modern: no ClickHouse HTTP address: set [clickhouse] http_addresses (Options.ClickHouseHTTP)")
	}
	d, err := mch.Open(ctx, mch.Options{Addresses: o.ClickHouse, HTTPAddresses: o.ClickHouseHTTP, Conn: chsnap.ConnOptions{User: o.User, Password: o.Password},
		Database: o.Database, ZooKeeper: o.ZooKeeper})
	if err != nil {
		return fmt.Errorf("demo seed --modern: %w", err)
	}
	defer d.Close()
	if err := migrateUp(ctx, config.SourceClickHouse, modernMigrations, d, "", o.Database); err != nil {
		return err
	}
	h := &chsnap.HTTP{Addr: o.ClickHouseHTTP[0], User: o.User, Password: o.Password}
	db := chsnap.QuoteIdent(o.Database)
	var existing string
	if existing, err = queryString(ctx, h, "SELECT count() FROM "+db+".traces"); err != nil {
		return fmt.Errorf("count demo traces on %s: %w", o.ClickHouseHTTP[0], err)
	}
	if existing != "0" {
		return fmt.Errorf("clickhouse %s.traces has %s rows: %w", o.Database, existing, ErrAlreadySeeded)
	}
	r := strings.NewReplacer(
		"{db}", db,
		"{n}", fmt.Sprint(o.Traces),
		"{seed}", fmt.Sprint(o.Seed),
		"{start}", o.Start.UTC().Format("2006-01-02 15:04:05"),
		"{span_ms}", fmt.Sprint(int64(o.Months)*30*86_400_000),
		"{spans}", fmt.Sprint(int64(o.Traces)*spansPerTrace),
	)
	for i, table := range ModernTables {
		if modernInserts[i] == "" {
			// Filled by a materialized view from the table before it.
		} else if err := h.Exec(ctx, r.Replace(modernInserts[i]), nil); err != nil {
			return fmt.Errorf("seed %s.%s on %s: %w", o.Database, table, o.ClickHouseHTTP[0], err)
		}
		n, err := queryString(ctx, h, "SELECT count() FROM "+db+"."+table)
		if err != nil {
			return fmt.Errorf("count %s.%s: %w", o.Database, table, err)
		}
		var c int64
		fmt.Sscan(n, &c)
		rows["clickhouse:"+table] = c
		if o.Progress != nil {
			o.Progress(table, c)
		}
	}
	return nil
}

func queryString(ctx context.Context, h *chsnap.HTTP, sql string) (string, error) {
	rc, err := h.Query(ctx, sql, nil)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	var b strings.Builder
	if _, err := io.Copy(&b, rc); err != nil {
		return "", err
	}
	return strings.TrimSpace(b.String()), nil
}

// modernInserts fill ModernTables, same order. h(k) below is cityHash64(row, k, seed); a trace's
// observations and scores recompute its hashes from the trace number, so they agree with it.
// Some values are NULL, empty maps and arrays, deleted rows (is_deleted), non-ASCII and
// escaping-prone strings, so that an export and a load meet every case of each type.
var modernInserts = []string{
	`INSERT INTO {db}.traces (id, timestamp, name, user_id, metadata, release, version, project_id, environment,
	public, bookmarked, tags, input, output, session_id, created_at, updated_at, event_ts, is_deleted)
SELECT
	concat('tr-', toString({seed}), '-', leftPad(toString(number), 8, '0')) AS id,
	toDateTime64('{start}', 3, 'UTC') + toIntervalMillisecond(cityHash64(number, 1, {seed}) % {span_ms}) AS ts,
	['chat', 'rag-query', 'summarize', 'agent-run', 'classify'][1 + cityHash64(number, 2, {seed}) % 5],
	if(cityHash64(number, 3, {seed}) % 7 = 0, NULL, concat('user-', toString(cityHash64(number, 3, {seed}) % 500))),
	mapFilter((k, v) -> v != '', map('region', ['eu-west', 'us-east', 'ap-south'][1 + cityHash64(number, 4, {seed}) % 3],
		'app_version', concat('1.', toString(cityHash64(number, 5, {seed}) % 9)),
		'note', if(number % 11 = 0, 'données ✓ "quoted"\ttab\nline', ''))),
	if(number % 4 = 0, NULL, concat('v2.', toString(number % 30))),
	NULL,
	concat('proj-', toString(1 + cityHash64(number, 6, {seed}) % 12)) AS project_id,
	['production', 'staging', 'default'][1 + cityHash64(number, 7, {seed}) % 3],
	cityHash64(number, 8, {seed}) % 20 = 0,
	cityHash64(number, 9, {seed}) % 50 = 0,
	arraySlice(['beta', 'vip', 'internal', 'canary'], 1 + cityHash64(number, 10, {seed}) % 4, cityHash64(number, 11, {seed}) % 3),
	if(number % 9 = 0, NULL, concat('{"messages":[{"role":"user","content":"question ', toString(number), '"}]}')),
	if(number % 9 = 0, NULL, concat('{"role":"assistant","content":"answer ', toString(cityHash64(number, 12, {seed})), '"}')),
	if(number % 3 = 0, NULL, concat('sess-', toString(cityHash64(number, 13, {seed}) % 20000))),
	ts, ts + toIntervalSecond(2), ts + toIntervalSecond(2),
	number % 50 = 49
FROM numbers({n})`,

	`INSERT INTO {db}.observations (id, trace_id, project_id, environment, type, parent_observation_id, start_time,
	end_time, name, metadata, level, status_message, version, input, output, provided_model_name, internal_model_id,
	model_parameters, provided_usage_details, usage_details, provided_cost_details, cost_details, total_cost,
	completion_start_time, prompt_id, prompt_name, prompt_version, created_at, updated_at, event_ts, is_deleted)
SELECT
	concat(trace_id, '-o', toString(k)),
	concat('tr-', toString({seed}), '-', leftPad(toString(t), 8, '0')) AS trace_id,
	concat('proj-', toString(1 + cityHash64(t, 6, {seed}) % 12)),
	['production', 'staging', 'default'][1 + cityHash64(t, 7, {seed}) % 3],
	['SPAN', 'GENERATION', 'GENERATION', 'EVENT'][1 + cityHash64(number, 20, {seed}) % 4] AS typ,
	if(k = 0, NULL, concat(trace_id, '-o0')),
	toDateTime64('{start}', 3, 'UTC') + toIntervalMillisecond(cityHash64(t, 1, {seed}) % {span_ms} + k * 1500) AS start,
	if(typ = 'EVENT', NULL, start + toIntervalMillisecond(200 + cityHash64(number, 21, {seed}) % 3000)),
	['llm-call', 'retrieve', 'rerank', 'tool', 'format'][1 + cityHash64(number, 22, {seed}) % 5],
	if(k = 1, map('step', toString(k), 'retriever', 'bm25'), map()),
	['DEFAULT', 'DEFAULT', 'DEBUG', 'WARNING', 'ERROR'][1 + cityHash64(number, 23, {seed}) % 5] AS level,
	if(level = 'ERROR', 'upstream timeout after 30s', NULL),
	NULL,
	if(typ = 'GENERATION', concat('prompt ', toString(number)), NULL),
	if(typ = 'GENERATION', concat('completion ', toString(cityHash64(number, 24, {seed}))), NULL),
	if(typ = 'GENERATION', ['gpt-4o', 'claude-3-5-sonnet', 'llama-3.1-70b'][1 + cityHash64(number, 25, {seed}) % 3], NULL) AS model,
	if(typ = 'GENERATION', concat('m-', model), NULL),
	if(typ = 'GENERATION', '{"temperature":0.2,"max_tokens":512}', NULL),
	mapFilter((k, v) -> typ = 'GENERATION', map('input', 50 + cityHash64(number, 26, {seed}) % 2000, 'output', 20 + cityHash64(number, 27, {seed}) % 800)) AS usage,
	mapFilter((k, v) -> typ = 'GENERATION', map('input', usage['input'], 'output', usage['output'], 'total', usage['input'] + usage['output'])),
	mapFilter((k, v) -> typ = 'GENERATION', map('input', toDecimal64(usage['input'] * 25, 12) / 10000000, 'output', toDecimal64(usage['output'], 12) / 100000)) AS cost,
	mapFilter((k, v) -> typ = 'GENERATION', map('input', cost['input'], 'output', cost['output'], 'total', cost['input'] + cost['output'])),
	if(typ = 'GENERATION', cost['input'] + cost['output'], NULL),
	if(typ = 'GENERATION', start + toIntervalMillisecond(150), NULL),
	NULL,
	if(typ = 'GENERATION', 'qa-prompt', NULL),
	if(typ = 'GENERATION', toUInt16(1 + number % 3), NULL),
	start, start, start,
	0
FROM (SELECT number, intDiv(number, 3) AS t, number % 3 AS k FROM numbers({n} * 3))`,

	`INSERT INTO {db}.scores (id, timestamp, project_id, environment, trace_id, session_id, observation_id, name, value,
	source, comment, metadata, author_user_id, config_id, data_type, string_value, queue_id, created_at, updated_at, event_ts, is_deleted)
SELECT
	concat(tid, '-s', toString(number % 2)),
	toDateTime64('{start}', 3, 'UTC') + toIntervalMillisecond(cityHash64(t, 1, {seed}) % {span_ms} + 60000) AS ts,
	concat('proj-', toString(1 + cityHash64(t, 6, {seed}) % 12)),
	['production', 'staging', 'default'][1 + cityHash64(t, 7, {seed}) % 3],
	concat('tr-', toString({seed}), '-', leftPad(toString(t), 8, '0')) AS tid,
	NULL,
	if(number % 2 = 1, concat(tid, '-o0'), NULL),
	['accuracy', 'helpfulness', 'toxicity', 'sentiment'][1 + cityHash64(number, 30, {seed}) % 4] AS name,
	(cityHash64(number, 31, {seed}) % 1001) / 1000,
	['API', 'EVAL', 'ANNOTATION'][1 + cityHash64(number, 32, {seed}) % 3],
	if(number % 5 = 0, 'reviewed, «ok»', NULL),
	if(number % 2 = 0, map('evaluator', 'v3'), map()),
	if(number % 3 = 0, NULL, concat('user-', toString(cityHash64(number, 33, {seed}) % 500))),
	NULL,
	if(name = 'sentiment', 'CATEGORICAL', 'NUMERIC') AS data_type,
	if(data_type = 'CATEGORICAL', ['positive', 'neutral', 'negative'][1 + cityHash64(number, 34, {seed}) % 3], NULL),
	NULL,
	ts, ts, ts,
	0
FROM (SELECT number, intDiv(number, 2) AS t FROM numbers({n} * 2))
WHERE cityHash64(number, 35, {seed}) % 3 != 0`,

	`INSERT INTO {db}.events (id, project_id, timestamp, body, attributes, is_deleted)
SELECT
	reinterpretAsUUID(unhex(concat(hex(cityHash64(number, 40, {seed})), hex(cityHash64(number, 41, {seed}))))),
	concat('proj-', toString(1 + cityHash64(number, 6, {seed}) % 12)),
	toDateTime64('{start}', 3, 'UTC') + toIntervalMillisecond(cityHash64(number, 1, {seed}) % {span_ms}),
	concat('{"type":"', ['trace-create', 'span-update', 'generation-create'][1 + number % 3], '","n":', toString(number),
		',"usage":{"input":', toString(cityHash64(number, 42, {seed}) % 2000), '}',
		if(number % 4 = 0, ',"model":"gpt-4o","tags":["a","b"]', ''),
		if(number % 7 = 0, ',"nested":{"deep":{"ok":true,"ratio":0.25}}', ''), '}'),
	map('sdk', ['python', 'js'][1 + number % 2]),
	number % 25 = 0
FROM numbers({n})`,

	eventsGen{
		prefix:  "sp-{seed}",
		first:   "0",
		rows:    "{spans}",
		project: "concat('proj-', toString(1 + cityHash64(t, 6, {seed}) % 12))",
		start:   "toDateTime64('{start}', 6, 'UTC') + toIntervalMicrosecond((cityHash64(t, 1, {seed}) % {span_ms}) * 1000 + k * 1500000 + number % 1000)",
		output:  `concat('{"role":"assistant","content":"answer ', toString(cityHash64(number, 12, {seed})), '"}')`,
		version: "start",
		deleted: "number % 50 = 49",
	}.sql(),

	"", // events_core: events_core_mv fills it from events_full

	// Staging rows first seen within an hour of the start: 20 partitions of 3 minutes.
	`INSERT INTO {db}.observations_batch_staging (id, trace_id, project_id, type, start_time, name, metadata, input, output,
	cost_details, environment, s3_first_seen_timestamp, event_ts, is_deleted)
SELECT
	concat('st-', toString({seed}), '-', leftPad(toString(number), 8, '0')),
	concat('st-', toString({seed}), '-t', leftPad(toString(intDiv(number, 3)), 8, '0')),
	concat('proj-', toString(1 + cityHash64(intDiv(number, 3), 6, {seed}) % 12)),
	['SPAN', 'GENERATION', 'EVENT'][1 + cityHash64(number, 60, {seed}) % 3],
	toDateTime64('{start}', 3, 'UTC') + toIntervalMillisecond(cityHash64(number, 61, {seed}) % 3600000) AS seen,
	['llm-call', 'retrieve', 'tool'][1 + cityHash64(number, 62, {seed}) % 3],
	if(number % 4 = 0, map(), map('sdk', ['python', 'js'][1 + number % 2])),
	if(number % 9 = 0, NULL, concat('staged question ', toString(number))),
	if(number % 9 = 0, NULL, concat('staged answer ', toString(cityHash64(number, 63, {seed})))),
	map('input', toDecimal64(cityHash64(number, 64, {seed}) % 1000, 12) / 1000000),
	['production', 'staging', 'default'][1 + cityHash64(number, 7, {seed}) % 3],
	seen, seen,
	0
FROM numbers({n})`,
}
