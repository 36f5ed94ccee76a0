package demo

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/tracevault/tracevault/config"
	mch "github.com/tracevault/tracevault/migrate/clickhouse"
	chsnap "github.com/tracevault/tracevault/snapshot/clickhouse"
)

// chunkTraces is how many traces one generated chunk holds; fixed, because the chunk index
// seeds its generator.
const chunkTraces = 20_000

func connect(ctx context.Context, addr string, o Options) (driver.Conn, error) {
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr:        []string{addr},
		Auth:        clickhouse.Auth{Database: "default", Username: o.User, Password: o.Password},
		DialTimeout: 10 * time.Second,
		// Load's senders insert three tables each at once (loadSenders); a seed uses one.
		MaxOpenConns: 3*loadSenders + 2,
		Settings:     clickhouse.Settings{"max_execution_time": 600},
	})
	if err != nil {
		return nil, fmt.Errorf("connect to clickhouse %s: %w", addr, err)
	}
	if err := conn.Ping(ctx); err != nil {
		return nil, fmt.Errorf("connect to clickhouse %s: %w", addr, err)
	}
	return conn, nil
}

// ReplicatedTables are the demo tables that replicate through ZooKeeper, with the migrations'
// own: golang-migrate's schema_migrations and tracevault's checksums.
var ReplicatedTables = []string{"traces", "observations", "scores", "blob_storage_file_log", "project_environments", "schema_migrations", "tracevault_migrations"}

func seedClickHouse(ctx context.Context, o Options, w *world, rows map[string]int64) error {
	if err := migrateClickHouse(ctx, o); err != nil {
		return err
	}
	conns := make([]driver.Conn, 0, len(o.ClickHouse))
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for _, addr := range o.ClickHouse {
		c, err := connect(ctx, addr, o)
		if err != nil {
			return err
		}
		conns = append(conns, c)
	}
	primary := conns[0]
	var existing uint64
	if err := primary.QueryRow(ctx, fmt.Sprintf("SELECT count() FROM %s.traces", o.Database)).Scan(&existing); err != nil {
		return fmt.Errorf("count demo traces on %s: %w", o.ClickHouse[0], err)
	}
	if existing > 0 {
		return fmt.Errorf("clickhouse %s.traces has %d rows: %w", o.Database, existing, ErrAlreadySeeded)
	}
	if err := insertChunks(ctx, primary, o, w, rows); err != nil {
		return err
	}
	for i, c := range conns {
		n, err := insert(ctx, c, o.Database, eventLogRows(o, i))
		if err != nil {
			return fmt.Errorf("seed event_log on %s: %w", o.ClickHouse[i], err)
		}
		rows[fmt.Sprintf("clickhouse:event_log@%s", o.ClickHouse[i])] += n
	}
	// Tests compare replicas right after seeding, so wait until every replica has every part.
	for i, c := range conns[1:] {
		for _, t := range ReplicatedTables {
			if err := c.Exec(ctx, fmt.Sprintf("SYSTEM SYNC REPLICA %s.%s", o.Database, t)); err != nil {
				return fmt.Errorf("sync replica %s table %s.%s: %w", o.ClickHouse[i+1], o.Database, t, err)
			}
		}
	}
	return nil
}

func migrateClickHouse(ctx context.Context, o Options) error {
	if len(o.ClickHouseHTTP) == 0 {
		return errors.New("demo seed: no ClickHouse HTTP address: the schema migrations run over the HTTP interface; set [clickhouse] http_addresses (Options.ClickHouseHTTP)")
	}
	d, err := mch.Open(ctx, mch.Options{Addresses: o.ClickHouse, HTTPAddresses: o.ClickHouseHTTP, Conn: chsnap.ConnOptions{User: o.User, Password: o.Password},
		Database: o.Database, Cluster: o.Cluster, ZooKeeper: o.ZooKeeper})
	if err != nil {
		return fmt.Errorf("demo seed: %w", err)
	}
	defer d.Close()
	return migrateUp(ctx, config.SourceClickHouse, config.SourceClickHouse, d, o.Cluster, o.Database)
}

// insertChunks generates the next chunk while the previous one is being inserted.
func insertChunks(ctx context.Context, conn driver.Conn, o Options, w *world, rows map[string]int64) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	chunks := make(chan []*rowSet, 1)
	go func() {
		defer close(chunks)
		for first, idx := 0, uint64(0); first < o.Traces; first, idx = first+chunkTraces, idx+1 {
			n := min(chunkTraces, o.Traces-first)
			select {
			case chunks <- generateChunk(o, w, idx, first, n):
			case <-ctx.Done():
				return
			}
		}
	}()
	for sets := range chunks {
		for _, s := range sets {
			n, err := insert(ctx, conn, o.Database, s)
			if err != nil {
				return fmt.Errorf("seed %s.%s: %w", o.Database, s.table, err)
			}
			rows["clickhouse:"+s.table] += n
			if o.Progress != nil {
				o.Progress(s.table, rows["clickhouse:"+s.table])
			}
		}
	}
	return ctx.Err()
}

// rowSet is a batch of rows for one table, held column by column as the native protocol
// sends them: one slice per column, all the same length.
type rowSet struct {
	table string
	names []string
	cols  []any
	n     int
}

func (s *rowSet) col(name string, values any) {
	s.names = append(s.names, name)
	s.cols = append(s.cols, values)
}

func insert(ctx context.Context, conn driver.Conn, db string, s *rowSet) (int64, error) {
	if s.n == 0 {
		return 0, nil
	}
	// 18.16 needs the explicit column list for a native batch insert.
	batch, err := conn.PrepareBatch(ctx, fmt.Sprintf("INSERT INTO %s.%s (%s)", db, s.table, strings.Join(s.names, ", ")))
	if err != nil {
		return 0, err
	}
	for i, c := range s.cols {
		if err := batch.Column(i).Append(c); err != nil {
			_ = batch.Abort()
			return 0, fmt.Errorf("column %s: %w", s.names[i], err)
		}
	}
	if err := batch.Send(); err != nil {
		return 0, err
	}
	return int64(s.n), nil
}

func generateChunk(o Options, w *world, idx uint64, first, n int) []*rowSet {
	r := rng(o.Seed, idx)
	var t traceCols
	var ob obsCols
	var sc scoreCols
	var bl blobCols
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("tr-%x-%08d", o.Seed, first+i)
		p := pick(r, w.projects)
		ts := momentIn(r, o.Start, o.Months)
		env := pick(r, environments)
		t.add(r, id, p.id, env, ts, w)
		nObs := 1 + r.IntN(observationsMax)
		for k := 0; k < nObs; k++ {
			ob.add(r, fmt.Sprintf("%s-o%d", id, k), id, p.id, env, ts.Add(time.Duration(k)*1500*time.Millisecond), k)
		}
		nScores := r.IntN(scoresMax + 1)
		for k := 0; k < nScores; k++ {
			sc.add(r, fmt.Sprintf("%s-s%d", id, k), id, p.id, env, ts.Add(time.Minute), pick(r, w.users))
		}
		if r.IntN(10) == 0 {
			bl.add(r, id, p.id, ts)
		}
	}
	return []*rowSet{t.rowSet(), ob.rowSet(), sc.rowSet(), bl.rowSet()}
}

type traceCols struct {
	id, name, project, env                []string
	ts, created, updated, eventTS         []time.Time
	userID, release, version, in, out, ss []*string
	mk, mv, tags                          [][]string
	public, bookmarked, deleted           []uint8
}

func (c *traceCols) add(r *rand.Rand, id, projectID, env string, ts time.Time, w *world) {
	c.id = append(c.id, id)
	c.ts = append(c.ts, ts)
	c.name = append(c.name, pick(r, traceNames))
	c.userID = append(c.userID, ptr(pick(r, w.users)))
	c.mk = append(c.mk, []string{"region", "app_version"})
	c.mv = append(c.mv, []string{pick(r, []string{"eu-west", "us-east", "ap-south"}), fmt.Sprintf("1.%d.%d", r.IntN(9), r.IntN(20))})
	c.release = append(c.release, ptr(fmt.Sprintf("v2.%d", r.IntN(30))))
	c.version = append(c.version, nil)
	c.project = append(c.project, projectID)
	c.env = append(c.env, env)
	c.public = append(c.public, uint8(r.IntN(20)/19))
	c.bookmarked = append(c.bookmarked, uint8(r.IntN(50)/49))
	c.tags = append(c.tags, []string{pick(r, []string{"beta", "vip", "internal", "canary"})})
	c.in = append(c.in, ptr(`{"messages":[{"role":"user","content":"`+sentence(r, 6, 24)+`"}]}`))
	c.out = append(c.out, ptr(`{"role":"assistant","content":"`+sentence(r, 8, 40)+`"}`))
	c.ss = append(c.ss, ptr(fmt.Sprintf("sess-%06d", r.IntN(200_000))))
	c.created = append(c.created, ts)
	c.updated = append(c.updated, ts.Add(2*time.Second))
	c.eventTS = append(c.eventTS, ts.Add(2*time.Second))
	c.deleted = append(c.deleted, 0)
}

func (c *traceCols) rowSet() *rowSet {
	s := &rowSet{table: "traces", n: len(c.id)}
	s.col("id", c.id)
	s.col("timestamp", c.ts)
	s.col("name", c.name)
	s.col("user_id", c.userID)
	s.col("metadata_keys", c.mk)
	s.col("metadata_values", c.mv)
	s.col("release", c.release)
	s.col("version", c.version)
	s.col("project_id", c.project)
	s.col("environment", c.env)
	s.col("public", c.public)
	s.col("bookmarked", c.bookmarked)
	s.col("tags", c.tags)
	s.col("input", c.in)
	s.col("output", c.out)
	s.col("session_id", c.ss)
	s.col("created_at", c.created)
	s.col("updated_at", c.updated)
	s.col("event_ts", c.eventTS)
	s.col("is_deleted", c.deleted)
	return s
}

type obsCols struct {
	id, trace, project, env, typ, name, level       []string
	parent, status, version, in, out, model, params []*string
	start, created, updated, eventTS                []time.Time
	end, completionStart                            []*time.Time
	mk, mv, uk, ck                                  [][]string
	uv                                              [][]uint64
	cv                                              [][]float64
	cost                                            []*float64
	promptName                                      []*string
	promptVersion                                   []*uint16
	deleted                                         []uint8
}

var obsTypes = []string{"SPAN", "GENERATION", "GENERATION", "EVENT"}

func (c *obsCols) add(r *rand.Rand, id, traceID, projectID, env string, start time.Time, k int) {
	c.addTyped(r, pick(r, obsTypes), id, traceID, projectID, env, start, k)
}

// addTyped adds an observation of a given type: a newer version of an observation must keep
// its type, which is part of the table's sorting key.
func (c *obsCols) addTyped(r *rand.Rand, typ, id, traceID, projectID, env string, start time.Time, k int) {
	c.id = append(c.id, id)
	c.trace = append(c.trace, traceID)
	c.project = append(c.project, projectID)
	c.env = append(c.env, env)
	c.typ = append(c.typ, typ)
	if k == 0 {
		c.parent = append(c.parent, nil)
	} else {
		c.parent = append(c.parent, ptr(traceID+"-o0"))
	}
	c.start = append(c.start, start)
	c.end = append(c.end, ptr(start.Add(time.Duration(200+r.IntN(3000))*time.Millisecond)))
	c.name = append(c.name, pick(r, obsNames))
	c.mk = append(c.mk, nil)
	c.mv = append(c.mv, nil)
	c.level = append(c.level, pick(r, levels))
	c.status = append(c.status, nil)
	c.version = append(c.version, nil)
	c.created = append(c.created, start)
	c.updated = append(c.updated, start)
	c.eventTS = append(c.eventTS, start)
	c.deleted = append(c.deleted, 0)
	if typ != "GENERATION" {
		c.in = append(c.in, nil)
		c.out = append(c.out, nil)
		c.model, c.params = append(c.model, nil), append(c.params, nil)
		c.uk, c.uv, c.ck, c.cv = append(c.uk, nil), append(c.uv, nil), append(c.ck, nil), append(c.cv, nil)
		c.cost = append(c.cost, nil)
		c.completionStart = append(c.completionStart, nil)
		c.promptName, c.promptVersion = append(c.promptName, nil), append(c.promptVersion, nil)
		return
	}
	in, out := uint64(50+r.IntN(2000)), uint64(20+r.IntN(800))
	cost := float64(in)*0.0000025 + float64(out)*0.00001
	c.in = append(c.in, ptr(sentence(r, 5, 20)))
	c.out = append(c.out, ptr(sentence(r, 5, 30)))
	c.model = append(c.model, ptr(pick(r, models)))
	c.params = append(c.params, ptr(fmt.Sprintf(`{"temperature":%.1f,"max_tokens":%d}`, r.Float64(), 256<<r.IntN(3))))
	c.uk = append(c.uk, []string{"input", "output", "total"})
	c.uv = append(c.uv, []uint64{in, out, in + out})
	c.ck = append(c.ck, []string{"total"})
	c.cv = append(c.cv, []float64{cost})
	c.cost = append(c.cost, ptr(cost))
	c.completionStart = append(c.completionStart, ptr(start.Add(150*time.Millisecond)))
	c.promptName = append(c.promptName, ptr(pick(r, traceNames)))
	c.promptVersion = append(c.promptVersion, ptr(uint16(1+r.IntN(3))))
}

func (c *obsCols) rowSet() *rowSet {
	s := &rowSet{table: "observations", n: len(c.id)}
	s.col("id", c.id)
	s.col("trace_id", c.trace)
	s.col("project_id", c.project)
	s.col("environment", c.env)
	s.col("type", c.typ)
	s.col("parent_observation_id", c.parent)
	s.col("start_time", c.start)
	s.col("end_time", c.end)
	s.col("name", c.name)
	s.col("metadata_keys", c.mk)
	s.col("metadata_values", c.mv)
	s.col("level", c.level)
	s.col("status_message", c.status)
	s.col("version", c.version)
	s.col("input", c.in)
	s.col("output", c.out)
	s.col("provided_model_name", c.model)
	s.col("model_parameters", c.params)
	s.col("usage_details_keys", c.uk)
	s.col("usage_details_values", c.uv)
	s.col("cost_details_keys", c.ck)
	s.col("cost_details_values", c.cv)
	s.col("total_cost", c.cost)
	s.col("completion_start_time", c.completionStart)
	s.col("prompt_name", c.promptName)
	s.col("prompt_version", c.promptVersion)
	s.col("created_at", c.created)
	s.col("updated_at", c.updated)
	s.col("event_ts", c.eventTS)
	s.col("is_deleted", c.deleted)
	return s
}

type scoreCols struct {
	id, project, env, trace, name, source, dataType []string
	obs, comment, author, config, str               []*string
	value                                           []float64
	ts, created, updated, eventTS                   []time.Time
	deleted                                         []uint8
}

func (c *scoreCols) add(r *rand.Rand, id, traceID, projectID, env string, ts time.Time, author string) {
	c.id = append(c.id, id)
	c.ts = append(c.ts, ts)
	c.project = append(c.project, projectID)
	c.env = append(c.env, env)
	c.trace = append(c.trace, traceID)
	c.obs = append(c.obs, nil)
	c.name = append(c.name, pick(r, scoreNames))
	c.value = append(c.value, float64(r.IntN(1001))/1000)
	c.source = append(c.source, pick(r, []string{"API", "EVAL", "ANNOTATION"}))
	c.comment = append(c.comment, nil)
	c.author = append(c.author, ptr(author))
	c.config = append(c.config, nil)
	c.dataType = append(c.dataType, "NUMERIC")
	c.str = append(c.str, nil)
	c.created = append(c.created, ts)
	c.updated = append(c.updated, ts)
	c.eventTS = append(c.eventTS, ts)
	c.deleted = append(c.deleted, 0)
}

func (c *scoreCols) rowSet() *rowSet {
	s := &rowSet{table: "scores", n: len(c.id)}
	s.col("id", c.id)
	s.col("timestamp", c.ts)
	s.col("project_id", c.project)
	s.col("environment", c.env)
	s.col("trace_id", c.trace)
	s.col("observation_id", c.obs)
	s.col("name", c.name)
	s.col("value", c.value)
	s.col("source", c.source)
	s.col("comment", c.comment)
	s.col("author_user_id", c.author)
	s.col("config_id", c.config)
	s.col("data_type", c.dataType)
	s.col("string_value", c.str)
	s.col("created_at", c.created)
	s.col("updated_at", c.updated)
	s.col("event_ts", c.eventTS)
	s.col("is_deleted", c.deleted)
	return s
}

// blobCols are the export-file records of Langfuse's blob storage integration; they double as
// the source of the local event_log rows.
type blobCols struct {
	id, project, entityType, entityID, eventID, bucket, path []string
	created, updated, eventTS                                []time.Time
	deleted                                                  []uint8
}

func (c *blobCols) add(r *rand.Rand, traceID, projectID string, ts time.Time) {
	c.id = append(c.id, "bl-"+traceID)
	c.project = append(c.project, projectID)
	c.entityType = append(c.entityType, "trace")
	c.entityID = append(c.entityID, traceID)
	c.eventID = append(c.eventID, fmt.Sprintf("ev-%x", r.Uint64()))
	c.bucket = append(c.bucket, "langfuse-events")
	c.path = append(c.path, fmt.Sprintf("%s/traces/%s.json", projectID, traceID))
	c.created = append(c.created, ts)
	c.updated = append(c.updated, ts)
	c.eventTS = append(c.eventTS, ts)
	c.deleted = append(c.deleted, 0)
}

func (c *blobCols) rowSet() *rowSet {
	s := &rowSet{table: "blob_storage_file_log", n: len(c.id)}
	s.col("id", c.id)
	s.col("project_id", c.project)
	s.col("entity_type", c.entityType)
	s.col("entity_id", c.entityID)
	s.col("event_id", c.eventID)
	s.col("bucket_name", c.bucket)
	s.col("bucket_path", c.path)
	s.col("created_at", c.created)
	s.col("updated_at", c.updated)
	s.col("event_ts", c.eventTS)
	s.col("is_deleted", c.deleted)
	return s
}

// eventLogRows are each replica's own local log: different on every replica, as in production,
// so a backup must take event_log from each of them.
func eventLogRows(o Options, replica int) *rowSet {
	r := rng(o.Seed, 1<<32+uint64(replica))
	n := o.Traces/100 + 10*(replica+1)
	s := &rowSet{table: "event_log", n: n}
	var id, project, et, eid, bucket, path []string
	var created []time.Time
	for i := 0; i < n; i++ {
		ts := momentIn(r, o.Start, o.Months)
		id = append(id, fmt.Sprintf("log-%d-%06d", replica+1, i))
		project = append(project, fmt.Sprintf("proj-%02d-%02d", 1+r.IntN(demoOrgs), 1+r.IntN(projectsPerOrg)))
		et = append(et, pick(r, []string{"trace", "observation", "score"}))
		eid = append(eid, fmt.Sprintf("tr-%x-%08d", o.Seed, r.IntN(max(o.Traces, 1))))
		bucket = append(bucket, "langfuse-events")
		path = append(path, fmt.Sprintf("replica-%d/%s.json", replica+1, id[i]))
		created = append(created, ts)
	}
	s.col("id", id)
	s.col("project_id", project)
	s.col("entity_type", et)
	s.col("entity_id", eid)
	s.col("bucket_name", bucket)
	s.col("bucket_path", path)
	s.col("created_at", created)
	s.col("updated_at", created)
	return s
}
