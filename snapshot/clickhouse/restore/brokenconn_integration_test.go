package restore_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tracevault/tracevault/internal/devstack"
	"github.com/tracevault/tracevault/internal/faultproxy"
	"github.com/tracevault/tracevault/snapshot"
	"github.com/tracevault/tracevault/snapshot/clickhouse"
	"github.com/tracevault/tracevault/snapshot/clickhouse/internal/chtest"
	"github.com/tracevault/tracevault/snapshot/clickhouse/restore"
	"github.com/tracevault/tracevault/snapshot/store"
)

// brokenConnFixture is a table of three partitions of about 1 MB of Native data each on 18.16's
// ch1, backed up into a filesystem repository, and a fault proxy in front of ch1's HTTP port,
// through which restores load.
type brokenConnFixture struct {
	env   *devstack.Env
	db    string
	repo  *store.Repository
	m     *store.Manifest
	proxy *faultproxy.Proxy
}

func newBrokenConnFixture(t *testing.T) *brokenConnFixture {
	t.Helper()
	env := devstack.Require(t)
	f := &brokenConnFixture{env: env, db: env.CHDatabase(t, "it_brk"), repo: chtest.Repo(t)}
	for _, sql := range []string{
		"CREATE TABLE " + f.db + ".events (d Date, id UInt64, payload String) ENGINE = MergeTree PARTITION BY toYYYYMM(d) ORDER BY id",
		"INSERT INTO " + f.db + ".events SELECT toDate(concat('2026-0', toString(6 + number % 3), '-01')), number, concat('payload-', toString(cityHash64(number))) FROM system.numbers LIMIT 90000",
	} {
		if err := env.CHExec(0, sql); err != nil {
			t.Fatal(err)
		}
	}
	src := &clickhouse.Source{Native: env.CHNative[:1], HTTP: env.CHHTTP[:1], Conn: clickhouse.ConnOptions{User: "default"},
		Filter: clickhouse.Filter{Databases: []string{f.db}}, Log: chtest.Quiet}
	var err error
	if f.m, err = snapshot.Run(context.Background(), f.repo, []snapshot.Source{src}, snapshot.Options{Log: chtest.Quiet}); err != nil {
		t.Fatalf("backup: %v", err)
	}
	if f.proxy, err = faultproxy.Listen("127.0.0.1:0", env.CHHTTP[0], nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.proxy.Close() })
	return f
}

// restore restores the snapshot into a database of its own on ch1, loading through the proxy.
func (f *brokenConnFixture) restore(t *testing.T, into string) error {
	t.Helper()
	t.Cleanup(func() { _ = f.env.CHExec(0, "DROP DATABASE IF EXISTS "+into) })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	_, err := planAndRestore(ctx, restore.Options{Native: f.env.CHNative[:1], HTTP: []string{f.proxy.Addr()}, Conn: clickhouse.ConnOptions{User: "default"},
		DatabaseMap: map[string]string{f.db: into}, Parallel: 2, Log: chtest.Quiet}, f.repo, f.m, nil)
	return err
}

// partitions is each partition's rows and content hash in db, as "id rows hash" lines.
func (f *brokenConnFixture) partitions(t *testing.T, db string) string {
	t.Helper()
	return queryTSV(t, f.env.CHHTTP[0], "SELECT toString(toYYYYMM(d)) AS p, count(), sum(cityHash64(id, payload)) FROM "+db+".events GROUP BY p ORDER BY p FORMAT TSV")
}

// TestRestoreSurvivesBrokenLoadConnections: with the server's side closing idle keep-alive
// connections sooner than the client expects, and one connection reset mid-body, a restore
// loads every partition again from its object where its connection broke and ends equal to its
// manifest (rows per partition) and to the data backed up, without a row twice.
func TestRestoreSurvivesBrokenLoadConnections(t *testing.T) {
	f := newBrokenConnFixture(t)
	f.proxy.Set(faultproxy.Mode{Fault: faultproxy.Reset, After: 64 << 10, Resets: 1, IdleClose: 20 * time.Millisecond})
	into := f.db + "_copy"
	if err := f.restore(t, into); err != nil {
		t.Fatalf("restore through a proxy that closes idle connections and resets one: %v", err)
	}
	stats := f.proxy.Stats()
	if stats.Resets != 1 {
		t.Errorf("the proxy reset %d connections, want 1: the test did not break a load", stats.Resets)
	}
	t.Logf("proxy: %+v", stats)
	sec, _, err := clickhouse.SnapshotSection(f.m)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, tbl := range sec.Tables {
		for _, p := range tbl.Partitions {
			want = append(want, fmt.Sprintf("%s\t%d", p.ID, p.Rows))
		}
	}
	if len(want) != 3 {
		t.Fatalf("the snapshot holds %d partitions, want 3", len(want))
	}
	got := f.partitions(t, into)
	var counts []string
	for _, line := range strings.Split(strings.TrimSpace(got), "\n") {
		fields := strings.Split(line, "\t")
		counts = append(counts, fields[0]+"\t"+fields[1])
	}
	if strings.Join(counts, "\n") != strings.Join(want, "\n") {
		t.Errorf("restored partitions (id, rows):\n%s\nthe manifest:\n%s", strings.Join(counts, "\n"), strings.Join(want, "\n"))
	}
	if src := f.partitions(t, f.db); got != src {
		t.Errorf("restored partitions (id, rows, hash):\n%s\nbacked up:\n%s", got, src)
	}
}

// TestRestoreGivesUpOnConnectionsThatNeverHold: when every connection is reset mid-body, the
// restore fails after Attempts loads of a partition, naming the attempts and the cause.
func TestRestoreGivesUpOnConnectionsThatNeverHold(t *testing.T) {
	f := newBrokenConnFixture(t)
	f.proxy.Set(faultproxy.Mode{Fault: faultproxy.Reset, After: 64 << 10})
	err := f.restore(t, f.db+"_copy")
	if err == nil {
		t.Fatal("a restore through a proxy that resets every connection succeeded")
	}
	t.Logf("%v", err)
	msg := err.Error()
	if !strings.Contains(msg, fmt.Sprintf("after %d attempts", clickhouse.Attempts)) ||
		!(strings.Contains(msg, "connection reset") || strings.Contains(msg, "broken pipe")) {
		t.Errorf("err %v; want it to name the %d attempts and the reset", err, clickhouse.Attempts)
	}
	if got := f.proxy.Stats().Resets; got < clickhouse.Attempts {
		t.Errorf("the proxy reset %d connections, fewer than the %d attempts", got, clickhouse.Attempts)
	}
}
