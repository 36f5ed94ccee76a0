package demo

import "strings"

// spansPerTrace is how many events_full rows (spans) each generated trace has: span k of trace
// t is row number 3t+k, so a trace's spans are found from its number alone (eventsFullInsert
// spells the 3).
const spansPerTrace = 3

// eventsGen says which spans an INSERT INTO events_full ... SELECT FROM numbers generates; the
// seed and the load share the statement and differ in these expressions. In them, number is
// the span's row number, t its trace's and k its place in the trace; start is its start_time.
type eventsGen struct {
	prefix  string // of every id: span "<prefix>-%08d", trace "<prefix>-t%08d"
	first   string // first row number, a multiple of spansPerTrace
	rows    string // rows to generate, a multiple of spansPerTrace
	project string // project_id
	start   string // start_time, DateTime64(6)
	output  string // output, the column the load edits
	version string // event_ts
	deleted string // is_deleted
}

// sql is the INSERT, with {db} and {seed} left for the caller.
func (g eventsGen) sql() string {
	return strings.NewReplacer("{prefix}", g.prefix, "{first}", g.first, "{rows}", g.rows, "{project}", g.project,
		"{start_time}", g.start, "{output}", g.output, "{version}", g.version, "{deleted}", g.deleted).Replace(eventsFullInsert)
}

// eventsFullInsert fills every kind of events_full column: Map of Decimal(18,12), arrays, a
// NULL end time for events, long inputs the text indexes tokenize, non-ASCII text, and the
// blob_storage_file_path of the raw event each row was built from. bookmarked and public start
// false: the load's edits set them.
const eventsFullInsert = `INSERT INTO {db}.events_full (project_id, trace_id, span_id, parent_span_id, start_time, end_time,
	name, type, environment, level, status_message, user_id, session_id, tags, bookmarked, public, provided_model_name,
	model_parameters, usage_details, cost_details, input, output, metadata_names, metadata_values, blob_storage_file_path,
	event_bytes, created_at, updated_at, event_ts, is_deleted)
SELECT
	{project} AS project,
	concat('{prefix}-t', leftPad(toString(t), 8, '0')) AS trace,
	concat('{prefix}-', leftPad(toString(number), 8, '0')) AS span,
	if(k = 0, '', concat('{prefix}-', leftPad(toString(number - k), 8, '0'))),
	{start_time} AS start,
	if(typ = 'EVENT', NULL, start + toIntervalMillisecond(200 + cityHash64(number, 51, {seed}) % 3000)),
	['llm-call', 'retrieve', 'rerank', 'tool:search', 'format'][1 + cityHash64(number, 52, {seed}) % 5],
	['SPAN', 'GENERATION', 'GENERATION', 'EVENT'][1 + cityHash64(number, 50, {seed}) % 4] AS typ,
	['production', 'staging', 'default'][1 + cityHash64(t, 7, {seed}) % 3],
	['DEFAULT', 'DEFAULT', 'DEBUG', 'WARNING', 'ERROR'][1 + cityHash64(number, 53, {seed}) % 5] AS lvl,
	if(lvl = 'ERROR', 'upstream timeout after 30s', ''),
	if(cityHash64(t, 3, {seed}) % 7 = 0, '', concat('user-', toString(cityHash64(t, 3, {seed}) % 500))),
	if(t % 3 = 0, '', concat('sess-', toString(cityHash64(t, 13, {seed}) % 20000))),
	arraySlice(['beta', 'vip', 'internal', 'canary'], 1 + cityHash64(t, 10, {seed}) % 4, cityHash64(t, 11, {seed}) % 3),
	false, false,
	if(typ = 'GENERATION', ['gpt-4o', 'claude-3-5-sonnet', 'llama-3.1-70b'][1 + cityHash64(number, 54, {seed}) % 3], '') AS model,
	if(typ = 'GENERATION', '{"temperature":0.2,"max_tokens":512}', ''),
	mapFilter((k, v) -> typ = 'GENERATION', map('input', 50 + cityHash64(number, 55, {seed}) % 2000, 'output', 20 + cityHash64(number, 56, {seed}) % 800)) AS usage,
	mapFilter((k, v) -> typ = 'GENERATION', map('input', toDecimal64(usage['input'] * 25, 12) / 10000000, 'output', toDecimal64(usage['output'], 12) / 100000,
		'total', toDecimal64(usage['input'] * 25, 12) / 10000000 + toDecimal64(usage['output'], 12) / 100000)),
	concat('{"messages":[{"role":"user","content":"question ', toString(number), ' about the refund policy of order ',
		toString(cityHash64(number, 57, {seed}) % 100000), if(number % 11 = 0, ', données ✓ «quoted»', ''), '"}]}'),
	{output},
	if(k = 1, ['retriever', 'step'], []),
	if(k = 1, ['bm25', toString(k)], []),
	concat('events/', project, '/observation/', span, '/', lower(hex(cityHash64(number, 59, {seed}))), '.json'),
	300 + cityHash64(number, 58, {seed}) % 4000,
	start, start,
	{version},
	{deleted}
FROM (SELECT number, intDiv(number, 3) AS t, number % 3 AS k FROM numbers({first}, {rows}))`
