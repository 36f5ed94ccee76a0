package clickhouse_test

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/tracevault/tracevault/internal/devstack"
	"github.com/tracevault/tracevault/snapshot"
	"github.com/tracevault/tracevault/snapshot/clickhouse"
	"github.com/tracevault/tracevault/snapshot/clickhouse/internal/chtest"
	"github.com/tracevault/tracevault/snapshot/clickhouse/restore"
	"github.com/tracevault/tracevault/snapshot/store"
)

// oneServer is a single ClickHouse server (an 18.16 replica on its own, or ch-modern) and a
// filesystem repository, for tests of what one server's export and restore do.
type oneServer struct {
	t            *testing.T
	native, http string
	repo         *store.Repository
	modern       bool // an Atomic database: DROP TABLE frees the table's UUID only with SYNC
}

func newOneServer(t *testing.T, native, http string) *oneServer {
	t.Helper()
	return &oneServer{t: t, native: native, http: http, repo: chtest.Repo(t)}
}

func (o *oneServer) sql(q string) string {
	o.t.Helper()
	rc, err := (&clickhouse.HTTP{Addr: o.http, User: "default"}).Query(context.Background(), q, nil)
	if err != nil {
		o.t.Fatalf("%s: %v", q, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		o.t.Fatalf("%s: %v", q, err)
	}
	return strings.TrimSpace(string(b))
}

func (o *oneServer) drop(table string) {
	o.t.Helper()
	if o.modern {
		table += " SYNC"
	}
	o.sql("DROP TABLE " + table)
}

func (o *oneServer) backup(db string) *store.Manifest {
	o.t.Helper()
	src := &clickhouse.Source{Native: []string{o.native}, HTTP: []string{o.http}, Conn: clickhouse.ConnOptions{User: "default"},
		Filter: clickhouse.Filter{Databases: []string{db}}, Mode: clickhouse.ModeLogical, Log: chtest.Quiet}
	m, err := snapshot.Run(context.Background(), o.repo, []snapshot.Source{src}, snapshot.Options{Log: chtest.Quiet})
	if err != nil {
		o.t.Fatalf("backup of %s on %s: %v", db, o.native, err)
	}
	return m
}

func (o *oneServer) restore(m *store.Manifest) {
	o.t.Helper()
	ctx := context.Background()
	rs, err := restore.New(ctx, restore.Options{Native: []string{o.native}, HTTP: []string{o.http},
		Conn: clickhouse.ConnOptions{User: "default"}, Log: chtest.Quiet})
	if err != nil {
		o.t.Fatal(err)
	}
	defer rs.Close()
	plan, err := rs.Plan(ctx, m)
	if err != nil {
		o.t.Fatalf("plan: %v", err)
	}
	if err := rs.Execute(ctx, o.repo, plan, nil); err != nil {
		o.t.Fatalf("restore on %s: %v", o.native, err)
	}
}

// partitions is the recorded partitions of one table in a snapshot.
func partitions(t *testing.T, m *store.Manifest, table string) []clickhouse.PartitionRecord {
	t.Helper()
	sec, _, err := clickhouse.SnapshotSection(m)
	if err != nil {
		t.Fatal(err)
	}
	for _, tbl := range sec.Tables {
		if tbl.Name == table {
			return tbl.Partitions
		}
	}
	t.Fatalf("the snapshot has no table %s", table)
	return nil
}

// aggregateServers are the servers the aggregate-state tests run on: an 18.16 replica on its
// own, and ch-modern (26.x).
func aggregateServers(t *testing.T) map[string]func(t *testing.T) (*oneServer, string) {
	return map[string]func(t *testing.T) (*oneServer, string){
		"18.16": func(t *testing.T) (*oneServer, string) {
			env := devstack.Require(t)
			o := newOneServer(t, env.CHNative[0], env.CHHTTP[0])
			db := devstack.ScratchName("it_agg")
			o.sql("CREATE DATABASE " + db)
			t.Cleanup(func() { _ = env.CHExec(0, "DROP DATABASE IF EXISTS "+db) })
			return o, db
		},
		"26.x": func(t *testing.T) (*oneServer, string) {
			env := devstack.RequireModern(t)
			o := newOneServer(t, env.CHModernNative, env.CHModernHTTP)
			o.modern = true
			return o, env.ModernDatabase(t, "it_agg")
		},
	}
}

// TestAggregateStatesBackupRestore: an AggregatingMergeTree table with the states Langfuse's
// observation_stats and its siblings keep (uniq, argMax, sum) backs up and restores on 18.16
// and 26.x with every row's state and every merged value unchanged. argMax's state is one
// tracevault cannot walk in a Native stream, so the export is checked by the server's
// query_log, and the snapshot says so; a table of uniq states alone is walked.
func TestAggregateStatesBackupRestore(t *testing.T) {
	for name, open := range aggregateServers(t) {
		t.Run(name, func(t *testing.T) {
			o, db := open(t)
			o.sql(fmt.Sprintf(`CREATE TABLE %s.stats (project_id String, day Date, users AggregateFunction(uniq, String),
				last_name AggregateFunction(argMax, String, DateTime), n AggregateFunction(sum, UInt64))
				ENGINE = AggregatingMergeTree() PARTITION BY toYYYYMM(day) ORDER BY (project_id, day)`, db))
			o.sql(fmt.Sprintf(`CREATE TABLE %s.users (project_id String, day Date, users AggregateFunction(uniq, String))
				ENGINE = AggregatingMergeTree() PARTITION BY toYYYYMM(day) ORDER BY (project_id, day)`, db))
			for _, table := range []string{"stats", "users"} {
				o.sql("SYSTEM STOP MERGES " + db + "." + table)
			}
			// Three inserts of overlapping keys: unmerged states of the same key in several parts.
			for i := 0; i < 3; i++ {
				o.sql(fmt.Sprintf(`INSERT INTO %s.stats SELECT toString(number %% 7) AS p, toDate('2026-01-20') + (number %% 25) AS d,
					uniqState(toString(number * %d)), argMaxState(concat('name-', toString(number)), toDateTime('2026-01-01 00:00:00') + number), sumState(number)
					FROM numbers(20000) GROUP BY p, d`, db, i+1))
				o.sql(fmt.Sprintf(`INSERT INTO %s.users SELECT toString(number %% 5) AS p, toDate('2026-01-20') + (number %% 25) AS d, uniqState(toString(number + %d))
					FROM numbers(30000) GROUP BY p, d`, db, i*1000))
			}
			stats := func() []string {
				return []string{
					o.sql(fmt.Sprintf(`SELECT _partition_id, count(), sum(cityHash64(toString(finalizeAggregation(users)), finalizeAggregation(last_name), toString(finalizeAggregation(n))))
						FROM %s.stats GROUP BY _partition_id ORDER BY _partition_id`, db)),
					o.sql(fmt.Sprintf("SELECT project_id, uniqMerge(users), argMaxMerge(last_name), sumMerge(n) FROM %s.stats GROUP BY project_id ORDER BY project_id", db)),
					o.sql(fmt.Sprintf("SELECT _partition_id, count(), sum(finalizeAggregation(users)) FROM %s.users GROUP BY _partition_id ORDER BY _partition_id", db)),
					o.sql(fmt.Sprintf("SELECT project_id, uniqMerge(users) FROM %s.users GROUP BY project_id ORDER BY project_id", db)),
				}
			}
			before := stats()
			m := o.backup(db)
			for table, want := range map[string]string{"stats": clickhouse.CheckedQueryLog, "users": clickhouse.CheckedStream} {
				parts := partitions(t, m, table)
				if len(parts) != 2 {
					t.Errorf("%s: %d partitions recorded, want 2", table, len(parts))
				}
				for _, p := range parts {
					count := o.sql(fmt.Sprintf("SELECT count() FROM %s.%s WHERE _partition_id = '%s'", db, table, p.ID))
					if p.Checked != want || fmt.Sprint(p.Rows) != count {
						t.Errorf("%s partition %s recorded %d rows checked by %q; the table has %s rows and the check should be %q", table, p.ID, p.Rows, p.Checked, count, want)
					}
				}
			}
			o.drop(db + ".stats")
			o.drop(db + ".users")
			o.restore(m)
			after := stats()
			for i := range before {
				if after[i] != before[i] {
					t.Errorf("after restore:\n%s\nwant\n%s", after[i], before[i])
				}
			}
		})
	}
}

// TestQueryLoggedSeesAServerException: an export that fails after its first blocks were sent
// ends with a 200 and a body that looks whole; the server's query_log says it failed, on 18.16
// and 26.x.
func TestQueryLoggedSeesAServerException(t *testing.T) {
	for name, open := range aggregateServers(t) {
		t.Run(name, func(t *testing.T) {
			o, _ := open(t)
			h := &clickhouse.HTTP{Addr: o.http, User: "default"}
			ctx := context.Background()
			for _, tt := range []struct {
				sql     string
				rows    int64
				wantErr string
			}{
				{"SELECT number, toString(number) FROM numbers(100000) SETTINGS max_block_size = 1000 FORMAT Native", 100000, ""},
				// Far enough in that the first blocks have left the server's buffers.
				{"SELECT throwIf(number = 3000000), toString(number) FROM numbers(4000000) SETTINGS max_block_size = 1000 FORMAT Native", 0, "as ExceptionWhileProcessing"},
			} {
				ls, err := h.QueryLogged(ctx, tt.sql)
				if err != nil {
					t.Fatal(err)
				}
				_, err = io.ReadAll(ls)
				ls.Close()
				switch {
				case tt.wantErr == "" && (err != nil || ls.Rows() != tt.rows):
					t.Errorf("%s: %d rows, %v; want %d", tt.sql, ls.Rows(), err, tt.rows)
				case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
					t.Errorf("%s: %v; want an error saying %q", tt.sql, err, tt.wantErr)
				}
			}
		})
	}
}

// TestModernReplacingUnmergedVersionsRestore: a ReplacingMergeTree partition holding several
// unmerged versions of the same keys (separate INSERTs, merges stopped, no OPTIMIZE) restores
// on 26.x with every version: the restore's INSERT must not collapse them (optimize_on_insert).
func TestModernReplacingUnmergedVersionsRestore(t *testing.T) {
	env := devstack.RequireModern(t)
	o := newOneServer(t, env.CHModernNative, env.CHModernHTTP)
	o.modern = true
	db := env.ModernDatabase(t, "it_repl")
	o.sql(fmt.Sprintf(`CREATE TABLE %s.traces (id String, ts DateTime64(3), name String, event_ts DateTime64(3), is_deleted UInt8)
		ENGINE = ReplacingMergeTree(event_ts, is_deleted) PARTITION BY toYYYYMM(ts) ORDER BY id`, db))
	o.sql("SYSTEM STOP MERGES " + db + ".traces")
	for v := 0; v < 4; v++ {
		o.sql(fmt.Sprintf(`INSERT INTO %s.traces SELECT concat('t-', toString(number)), toDateTime64('2026-02-01 00:00:00', 3) + number,
			concat('v%d-', toString(number)), toDateTime64('2026-02-10 00:00:00', 3) + %d, toUInt8(%d = 3 AND number %% 10 = 0) FROM numbers(1000)`, db, v, v, v))
	}
	sums := func() string {
		return o.sql(fmt.Sprintf("SELECT _partition_id, count(), sum(cityHash64(toString(tuple(*)))) FROM %s.traces GROUP BY _partition_id ORDER BY _partition_id", db))
	}
	before := sums()
	// Each INSERT holds every key once, so nothing collapses until the restore's own INSERT
	// reads all four versions in one block.
	if !strings.Contains(before, "\t4000\t") {
		t.Fatalf("the table should hold 4000 unmerged rows: %s", before)
	}
	m := o.backup(db)
	o.drop(db + ".traces")
	o.restore(m)
	if after := sums(); after != before {
		t.Errorf("after restore:\n%s\nwant\n%s", after, before)
	}
}
