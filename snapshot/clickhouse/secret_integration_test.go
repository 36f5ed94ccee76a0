package clickhouse_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tracevault/tracevault/snapshot/clickhouse"
	"github.com/tracevault/tracevault/snapshot/clickhouse/internal/chtest"
	"github.com/tracevault/tracevault/snapshot/clickhouse/replica"
)

// passwordUser adds a user with a password, whose queries are all logged, to every replica of
// the stack (18.16 has no CREATE USER: a users.d file, which the servers reload by themselves)
// and removes it when the test ends.
func passwordUser(t *testing.T, f *fixture) clickhouse.ConnOptions {
	t.Helper()
	conn := clickhouse.ConnOptions{User: "tv_secret_user", Password: "pw-" + rand.Text()}
	xml := fmt.Sprintf(`<?xml version="1.0"?>
<yandex>
  <profiles><tv_secret_profile><log_queries>1</log_queries></tv_secret_profile></profiles>
  <users><%[1]s><password>%[2]s</password><networks><ip>::/0</ip></networks><profile>tv_secret_profile</profile><quota>default</quota></%[1]s></users>
</yandex>
`, conn.User, conn.Password)
	for _, data := range f.env.CHDataDirs {
		dir := filepath.Join(filepath.Dir(filepath.Clean(data)), "users.d")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Skipf("cannot add a user to this stack (%v): the test needs a stack on this host", err)
		}
		file := filepath.Join(dir, "tracevault-test-secret.xml")
		if err := os.WriteFile(file, []byte(xml), 0o644); err != nil {
			t.Skipf("cannot add a user to this stack (%v)", err)
		}
		t.Cleanup(func() { os.Remove(file) })
	}
	deadline := time.Now().Add(30 * time.Second)
	for i := range f.env.CHHTTP {
		h := &clickhouse.HTTP{Addr: f.env.CHHTTP[i], User: conn.User, Password: conn.Password}
		for h.Exec(context.Background(), "SELECT 1", nil) != nil {
			if time.Now().After(deadline) {
				t.Fatalf("replica %d has not loaded the test user", i+1)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	return conn
}

// TestRebuildKeepsThePasswordOutOfQueryLog: restore-replica's comparison of an isolated
// table's rows with its peers' used remote(…, user, password), which both servers keep in
// system.query_log. With a user that has a password and logs every query, no replica's log
// may hold the password afterwards, and the comparison still keeps only the rows the peers
// lack.
func TestRebuildKeepsThePasswordOutOfQueryLog(t *testing.T) {
	f := newFixture(t, 300)
	conn := passwordUser(t, f)
	ctx := context.Background()

	create := f.sql(t, 0, fmt.Sprintf("SHOW CREATE TABLE %s.traces", f.db))
	create = strings.NewReplacer(`\n`, "\n", `\'`, "'").Replace(create)
	f.sql(t, 2, fmt.Sprintf("DROP TABLE %s.traces", f.db))
	f.sql(t, 2, strings.Replace(create, "/clickhouse/tables/{shard}/"+f.db+"/traces", "/clickhouse/tables/{shard}/"+f.db+"/traces_isolated", 1))
	insert := fmt.Sprintf("INSERT INTO %s.traces (id, timestamp, project_id, environment, created_at, updated_at, event_ts) VALUES", f.db)
	f.sql(t, 2, insert+" ('only-here-1', '2026-07-15 10:00:00', 'proj-01-01', 'production', now(), now(), now())")
	// A row the peers have too, which is not kept aside.
	f.sql(t, 2, fmt.Sprintf("INSERT INTO %s.traces SELECT * FROM remote('%s', %s.traces) LIMIT 1", f.db, f.env.CHNative[0], f.db))

	var servers []*clickhouse.Server
	for _, addr := range f.env.CHNative {
		s, err := clickhouse.Dial(ctx, addr, conn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		servers = append(servers, s)
	}
	o := replica.Options{Filter: clickhouse.Filter{Databases: []string{f.db}}, Conn: conn, Log: chtest.Quiet, SyncTimeout: 2 * time.Minute, HTTP: map[string]string{}}
	for i, addr := range f.env.CHNative {
		o.HTTP[addr] = f.env.CHHTTP[i]
	}
	b := replica.NewRebuilder(ctx, servers, f.env.CHNative, connectZK(t, f.env), o)
	plan, err := b.Plan(ctx, "ch3")
	if err != nil {
		t.Fatal(err)
	}
	res, err := b.Execute(ctx, nil, plan, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Recovered) != 1 || res.Recovered[0].Rows != 1 {
		t.Fatalf("recovered %+v; want the 1 row only replica 3 had", res.Recovered)
	}

	// The check's own SQL must not contain the password either: it is searched for by its hex.
	pw := hex.EncodeToString([]byte(conn.Password))
	for i := range f.env.CHHTTP {
		f.sql(t, i, "SYSTEM FLUSH LOGS")
		logged := f.sql(t, i, fmt.Sprintf("SELECT count() FROM system.query_log WHERE user = '%s' AND event_date >= yesterday()", conn.User))
		leaked := f.sql(t, i, fmt.Sprintf("SELECT count() FROM system.query_log WHERE position(query, unhex('%s')) > 0", pw))
		if leaked != "0" {
			t.Errorf("replica %d: %s entries of system.query_log hold the password", i+1, leaked)
		}
		if i == 2 && logged == "0" {
			t.Errorf("replica 3 logged no query of %s: the test proves nothing", conn.User)
		}
	}
}
