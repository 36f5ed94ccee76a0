package jobs

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tracevault/tracevault/internal/devstack"
	"github.com/tracevault/tracevault/snapshot"
	"github.com/tracevault/tracevault/snapshot/clickhouse"
	"github.com/tracevault/tracevault/snapshot/store"
)

// TestVerifyNamesDamagedFrozenPart: a byte flipped in a part file on the server's disk before a
// freeze backup travels into the snapshot with a valid SHA-256; verify --read-data names the
// part, its table, partition and file from the part's own checksums.txt, and passes the intact
// partition. On 18.16 and on 26.7 (wide and compact parts, a projection).
func TestVerifyNamesDamagedFrozenPart(t *testing.T) {
	env := devstack.Require(t)
	engines := []struct {
		name   string
		native string
		create func(t *testing.T) (db string, sql func(string) (string, error))
		table  string
	}{
		{"18.16", env.CHNative[0], func(t *testing.T) (string, func(string) (string, error)) {
			db := env.CHDatabase(t, "it_vfrz")
			return db, func(q string) (string, error) { return "", env.CHExec(0, q) }
		}, `(d Date, id UInt64, s String, n Nullable(String)) ENGINE = MergeTree PARTITION BY toYYYYMM(d) ORDER BY id`},
		{"26.7", env.CHModernNative, func(t *testing.T) (string, func(string) (string, error)) {
			devstack.RequireModern(t)
			return env.ModernDatabase(t, "it_vfrz"), env.ModernQuery
		}, `(d Date, id UInt64, s String, n Nullable(String), PROJECTION by_s (SELECT * ORDER BY s))
			ENGINE = MergeTree PARTITION BY toYYYYMM(d) ORDER BY id SETTINGS min_rows_for_wide_part = 100, min_bytes_for_wide_part = 0`},
	}
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			ctx := context.Background()
			db, sql := e.create(t)
			mustSQL := func(q string) string {
				t.Helper()
				out, err := sql(q)
				if err != nil {
					t.Fatal(err)
				}
				return out
			}
			mustSQL(fmt.Sprintf("CREATE TABLE %s.t %s", db, e.table))
			// January: one wide part (1000 rows), which is damaged; February: a compact part on
			// 26.7 (50 rows), intact.
			mustSQL(fmt.Sprintf("INSERT INTO %s.t SELECT toDate('2026-01-01') + number %% 28, number, toString(number * 7), if(number %% 3 = 0, NULL, 'x') FROM system.numbers LIMIT 1000", db))
			mustSQL(fmt.Sprintf("INSERT INTO %s.t SELECT toDate('2026-02-01') + number %% 28, number, toString(number * 7), NULL FROM system.numbers LIMIT 50", db))
			srv, err := clickhouse.Dial(ctx, e.native, clickhouse.ConnOptions{User: "default"})
			if err != nil {
				t.Fatal(err)
			}
			var part, dir string
			err = srv.Conn.QueryRow(ctx, "SELECT name, path FROM system.parts WHERE active AND database = ? AND table = 't' AND partition_id = '202601'", db).Scan(&part, &dir)
			srv.Close()
			if err != nil {
				t.Fatal(err)
			}
			// In place, so the hard link the freeze makes shares the damage.
			f, err := os.OpenFile(filepath.Join(dir, "s.bin"), os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			b := make([]byte, 1)
			if _, err := f.ReadAt(b, 100); err != nil {
				t.Fatal(err)
			}
			b[0] ^= 0x10
			if _, err := f.WriteAt(b, 100); err != nil {
				t.Fatal(err)
			}
			f.Close()

			repo, err := store.Open(ctx, store.Options{URL: "file://" + t.TempDir(), Log: quiet})
			if err != nil {
				t.Fatal(err)
			}
			src := &clickhouse.Source{Native: []string{e.native}, Conn: clickhouse.ConnOptions{User: "default"},
				Filter: clickhouse.Filter{Databases: []string{db}}, Mode: clickhouse.ModeFreeze, Log: quiet}
			m, err := snapshot.Run(ctx, repo, []snapshot.Source{src}, snapshot.Options{Log: quiet})
			if err != nil {
				t.Fatalf("freeze backup: %v", err)
			}
			if len(m.Objects) != 2 {
				t.Fatalf("%d objects, want one per partition", len(m.Objects))
			}
			rep, err := repo.VerifyWith(ctx, []string{m.ID}, store.VerifyOptions{ReadData: true, Content: ContentChecks})
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Problems) != 1 {
				t.Fatalf("problems %+v: want exactly the damaged partition", rep.Problems)
			}
			p := rep.Problems[0]
			for _, want := range []string{db + ".t partition 202601", "part " + part + ": file s.bin has CityHash128"} {
				if !strings.Contains(p.Error, want) {
					t.Errorf("problem %q does not say %q", p.Error, want)
				}
			}
			if !strings.Contains(p.What, "202601") {
				t.Errorf("problem is about %q, want the partition", p.What)
			}
			// Without the content checks the damage is invisible: the object is what was uploaded.
			rep, err = repo.VerifyWith(ctx, []string{m.ID}, store.VerifyOptions{ReadData: true})
			if err != nil || len(rep.Problems) != 0 {
				t.Errorf("plain read-data verify: %v %+v", err, rep.Problems)
			}
		})
	}
}
