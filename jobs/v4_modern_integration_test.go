package jobs

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/tracevault/tracevault/demo"
	"github.com/tracevault/tracevault/internal/devstack"
	"github.com/tracevault/tracevault/snapshot/clickhouse"
	"github.com/tracevault/tracevault/snapshot/clickhouse/restore"
)

// TestLangfuseV4RoundTripModern: everything Langfuse v4 writes round-trips on the modern engine,
// in both export modes. The demo's v4 world (events_full with text indexes, block number and
// offset columns, MATERIALIZED and ALIAS columns, SAMPLE BY and a PRIMARY KEY shorter than its
// ORDER BY; events_core filled by events_core_mv; the staging table with its TTL; v3's tables)
// is seeded small, backed up, edited in place with lightweight updates and deletes, backed up
// incrementally, and restored into a fresh database: every table's SHOW CREATE is the source's
// but for the database's name, the restored parts carry the block columns (a lightweight update
// works on them), and every table reads as the source does, events_core filled once. Restoring
// events_full alone says that events_core_mv did not fire; restoring in place after the
// database is dropped gives every table its UUID back.
func TestLangfuseV4RoundTripModern(t *testing.T) {
	env := devstack.RequireModern(t)
	for _, mode := range []string{clickhouse.ModeLogical, clickhouse.ModeFreeze} {
		t.Run(mode, func(t *testing.T) {
			ctx := context.Background()
			db := devstack.ScratchName("it_v4")
			restored, alone := db+"_restored", db+"_alone"
			t.Cleanup(func() {
				for _, d := range []string{db, restored, alone} {
					_, _ = env.ModernQuery("DROP DATABASE IF EXISTS " + d + " SYNC")
				}
			})
			sql := func(t *testing.T, q string) string {
				t.Helper()
				out, err := env.ModernQuery(q)
				if err != nil {
					t.Fatalf("%s: %v", q, err)
				}
				return out
			}
			if _, err := demo.Seed(ctx, demo.Options{ClickHouse: []string{env.CHModernNative}, ClickHouseHTTP: []string{env.CHModernHTTP},
				Database: db, Modern: true, Traces: 20, Months: 1, Seed: 7}); err != nil {
				t.Fatal(err)
			}
			tables := strings.Fields(sql(t, "SELECT arrayStringConcat(groupArray(name), ' ') FROM (SELECT name FROM system.tables WHERE database = '"+db+"' AND name != 'schema_migrations' ORDER BY name)"))
			if !strings.Contains(strings.Join(tables, " "), "events_core events_core_mv events_full") {
				t.Fatalf("the v4 world holds %v; want events_full, events_core and events_core_mv", tables)
			}

			cfg, repo, backup := modernBackups(ctx, t, env, db, mode)
			backup(t)

			// Langfuse v4's writes in place: bookmark and output edits, and retention deletes in
			// lightweight_update mode, on both of its tables (an UPDATE fires no view).
			for _, tbl := range []string{"events_full", "events_core"} {
				for _, q := range []string{
					"UPDATE %s.%s SET bookmarked = true WHERE cityHash64(span_id) %% 5 = 0",
					"UPDATE %s.%s SET output = 'edited' WHERE cityHash64(span_id) %% 5 = 1",
					"DELETE FROM %s.%s WHERE cityHash64(span_id) %% 7 = 2 SETTINGS lightweight_delete_mode = 'lightweight_update'",
				} {
					sql(t, fmt.Sprintf(q, db, tbl))
				}
			}
			if n := sql(t, "SELECT count() FROM system.parts WHERE database = '"+db+"' AND table = 'events_full' AND active AND startsWith(partition_id, 'patch-')"); n == "0" {
				t.Fatal("the lightweight updates wrote no patch parts")
			}
			m := backup(t)
			if tot := m.Totals(); tot.Reused == 0 || tot.Reused == tot.Objects {
				t.Errorf("the incremental snapshot reused %d of %d objects; want the untouched tables' reused and the edited ones' uploaded", tot.Reused, tot.Objects)
			}

			// What a table reads as: its rows per partition (every version), a Replacing table's
			// FINAL rows, and the MATERIALIZED and ALIAS columns tuple(*) leaves out.
			content := func(t *testing.T, db, tbl string) string {
				t.Helper()
				q := "SELECT _partition_id, count(), sum(cityHash64(toString(tuple(*)))) FROM " + db + "." + tbl + "%s GROUP BY _partition_id ORDER BY _partition_id"
				out := sql(t, fmt.Sprintf(q, ""))
				if strings.Contains(sql(t, "SELECT engine FROM system.tables WHERE database = '"+db+"' AND name = '"+tbl+"'"), "Replacing") {
					out += "\nFINAL\n" + sql(t, fmt.Sprintf(q, " FINAL"))
				}
				if tbl == "events_full" {
					out += "\n" + sql(t, "SELECT sum(cityHash64(input_length, output_length, input_cost, total_cost)) FROM "+db+".events_full FINAL")
				}
				return out
			}
			creates := func(t *testing.T, db string) map[string]string {
				t.Helper()
				out := map[string]string{}
				for _, tbl := range tables {
					out[tbl] = strings.ReplaceAll(sql(t, "SHOW CREATE TABLE "+db+"."+tbl+" FORMAT TSVRaw"), db+".", "DB.")
				}
				return out
			}
			wantCreates, wantContent := creates(t, db), map[string]string{}
			for _, tbl := range tables {
				if !strings.HasSuffix(tbl, "_mv") {
					wantContent[tbl] = content(t, db, tbl)
				}
			}
			for _, want := range []string{"TYPE text(", "enable_block_number_column = 1", "enable_block_offset_column = 1", "MATERIALIZED lengthUTF8(input)",
				"ALIAS cost_details['total']", "SAMPLE BY xxHash32(trace_id)", "PRIMARY KEY (project_id, toStartOfMinute(start_time), xxHash32(trace_id))"} {
				if !strings.Contains(wantCreates["events_full"], want) {
					t.Fatalf("the source's events_full lacks %q:\n%s", want, wantCreates["events_full"])
				}
			}
			if !strings.Contains(wantCreates["observations_batch_staging"], "TTL toDateTime(s3_first_seen_timestamp) + toIntervalYear(5)") {
				t.Fatalf("the source's staging table has no TTL:\n%s", wantCreates["observations_batch_staging"])
			}

			planRestore := func(t *testing.T, o restore.Options) (*restore.Restorer, *restore.Plan) {
				t.Helper()
				o.Native, o.HTTP, o.Conn, o.Repo, o.Log = cfg.ClickHouse.Addresses, cfg.ClickHouse.HTTPAddresses, clickhouse.ConnOptions{User: "default"}, repo, quiet
				rs, err := restore.New(ctx, o)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(rs.Close)
				plan, err := rs.Plan(ctx, m)
				if err != nil {
					t.Fatalf("plan: %v", err)
				}
				return rs, plan
			}
			restoreSnapshot := func(t *testing.T, o restore.Options) *restore.Plan {
				t.Helper()
				rs, plan := planRestore(t, o)
				if len(plan.Preflight) > 0 {
					t.Errorf("preflight findings on the engine the snapshot came from: %+v", plan.Preflight)
				}
				if err := rs.Execute(ctx, repo, plan, nil); err != nil {
					t.Fatalf("restore: %v", err)
				}
				return plan
			}
			check := func(t *testing.T, got string) {
				t.Helper()
				for tbl, want := range creates(t, got) {
					if want != wantCreates[tbl] {
						t.Errorf("%s restored as\n%s\nwant the source's\n%s", tbl, want, wantCreates[tbl])
					}
				}
				for tbl, want := range wantContent {
					if c := content(t, got, tbl); c != want {
						t.Errorf("%s.%s reads\n%s\nwant the source's\n%s", got, tbl, c, want)
					}
				}
			}

			t.Run("into a fresh database", func(t *testing.T) {
				plan := restoreSnapshot(t, restore.Options{DatabaseMap: map[string]string{db: restored}})
				check(t, restored)
				var out bytes.Buffer
				restore.WritePlan(&out, plan)
				if want := "note: " + restored + ".events_core_mv: not fired by the restore (REPLACE PARTITION) of " + restored + ".events_full; " + restored + ".events_core restored from its own snapshot"; !strings.Contains(out.String(), want) {
					t.Errorf("the plan says\n%s\nwant %q", out.String(), want)
				}
				// The block number and offset columns survive (the settings, compared above, and
				// the columns a lightweight update matches its patch parts by): Langfuse can go on
				// updating the restored rows in place.
				where := " FROM " + restored + ".events_full WHERE cityHash64(span_id) % 5 = 3"
				want := sql(t, "SELECT count()"+where)
				sql(t, "UPDATE "+restored+".events_full SET public = true WHERE cityHash64(span_id) % 5 = 3")
				if got := sql(t, "SELECT countIf(public)"+where); got != want || want == "0" {
					t.Errorf("a lightweight update of %s rows of the restored events_full made %s public", want, got)
				}
				// Incoming rows still reach events_core through the restored view, once.
				before := sql(t, "SELECT count() FROM "+restored+".events_core")
				sql(t, "INSERT INTO "+restored+".events_full (project_id, trace_id, span_id, start_time, event_ts, is_deleted) VALUES ('p', 't', 'new-span', '2026-05-02 00:00:00', now64(6), 0)")
				if after := sql(t, "SELECT count() FROM "+restored+".events_core"); after != fmt.Sprint(atoi(t, before)+1) {
					t.Errorf("events_core holds %s rows after one insert into the restored events_full; want %s + 1", after, before)
				}
			})
			t.Run("events_full alone", func(t *testing.T) {
				plan := restoreSnapshot(t, restore.Options{DatabaseMap: map[string]string{db: alone}, Tables: []string{db + ".events_full"}})
				want := alone + ".events_core_mv: not fired by the restore (REPLACE PARTITION) of " + alone + ".events_full; " + alone + ".events_core not restored"
				if len(plan.Notes) != 1 || !strings.HasPrefix(plan.Notes[0], want) {
					t.Errorf("plan notes %q; want one saying %q", plan.Notes, want)
				}
				if c := content(t, alone, "events_full"); c != wantContent["events_full"] {
					t.Errorf("events_full alone reads\n%s\nwant\n%s", c, wantContent["events_full"])
				}
				if n := sql(t, "SELECT count() FROM system.tables WHERE database = '"+alone+"' AND name LIKE 'events_core%'"); n != "0" {
					t.Errorf("%s tables events_core* after restoring events_full alone; want none", n)
				}
			})
			t.Run("a target at another migration version", func(t *testing.T) {
				// The source migrated on, and failed half-way, after the snapshot (at version 3).
				seq := sql(t, "SELECT max(sequence) + 1 FROM "+db+".schema_migrations")
				sql(t, "INSERT INTO "+db+".schema_migrations (version, dirty, sequence) VALUES (4, 1, "+seq+")")
				_, plan := planRestore(t, restore.Options{Replace: true})
				var text string
				for _, f := range plan.Preflight {
					if f.Refuse {
						t.Errorf("refused: %+v", f)
					}
					text += f.Message + "\n"
				}
				// A logical object is read; frozen parts are not, which the plan says.
				want := []string{"is dirty at migration version 4", "at migration version 4, the snapshot at 3"}
				if mode == clickhouse.ModeFreeze {
					want[1] = "the snapshot's migration version was not read (partition all is stored as frozen parts)"
				}
				for _, w := range want {
					if !strings.Contains(text, w) {
						t.Errorf("preflight findings\n%s\ndo not say %q", text, w)
					}
				}
			})
			t.Run("in place", func(t *testing.T) {
				uuids := "SELECT groupArray(name || ' ' || toString(uuid)) FROM (SELECT name, uuid FROM system.tables WHERE database = '" + db + "' ORDER BY name)"
				want := sql(t, uuids)
				sql(t, "DROP DATABASE "+db+" SYNC")
				restoreSnapshot(t, restore.Options{})
				if got := sql(t, uuids); got != want {
					t.Errorf("table UUIDs restored in place %s; want %s", got, want)
				}
				check(t, db)
			})
		})
	}
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	var n int
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return n
}
