package devstack

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/jackc/pgx/v5"
)

// ScratchName returns a name unique to this process and moment, valid as a PostgreSQL or
// ClickHouse database name, so integration tests never collide with each other or with data a
// developer keeps in the stack.
func ScratchName(prefix string) string {
	return fmt.Sprintf("%s_%d_%d", prefix, os.Getpid(), time.Now().UnixNano()%1e9)
}

// PGDatabase creates an empty PostgreSQL database for one test, dropped when the test ends,
// and returns its DSN.
func (e *Env) PGDatabase(tb testing.TB, prefix string) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	name := ScratchName(prefix)
	admin, err := pgx.Connect(ctx, e.PGDSN)
	if err != nil {
		tb.Fatalf("connect to stack postgres: %v", err)
	}
	defer admin.Close(context.Background())
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		tb.Fatalf("create scratch database %s: %v", name, err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if c, err := pgx.Connect(ctx, e.PGDSN); err == nil {
			_, _ = c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
			c.Close(ctx)
		}
	})
	u, err := url.Parse(e.PGDSN)
	if err != nil {
		tb.Fatalf("parse STACK_PG_DSN: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

// CHDatabase creates a ClickHouse database on every replica (ON CLUSTER) for one test. When the
// test ends it is dropped on every replica and its tables' ZooKeeper paths
// (/clickhouse/tables/<shard>/<db>) are removed, including registrations a test left behind.
func (e *Env) CHDatabase(tb testing.TB, prefix string) string {
	tb.Helper()
	name := ScratchName(prefix)
	if err := e.CHExec(0, "CREATE DATABASE "+name+" ON CLUSTER "+e.CHCluster); err != nil {
		tb.Fatalf("create scratch database %s: %v", name, err)
	}
	tb.Cleanup(func() {
		for i := range e.CHHTTP {
			_ = e.CHExec(i, "DROP DATABASE IF EXISTS "+name)
		}
		conn, _, err := zk.Connect([]string{e.ZK}, 10*time.Second, zk.WithLogInfo(false))
		if err != nil {
			return
		}
		defer conn.Close()
		shards, _, _ := conn.Children("/clickhouse/tables")
		for _, shard := range shards {
			deleteTree(conn, "/clickhouse/tables/"+shard+"/"+name)
		}
	})
	return name
}

func deleteTree(conn *zk.Conn, p string) {
	children, _, err := conn.Children(p)
	if err != nil {
		return
	}
	for _, c := range children {
		deleteTree(conn, p+"/"+c)
	}
	_ = conn.Delete(p, -1)
}

// ModernDatabase creates an Atomic database on ch-modern for one test, dropped (SYNC, so that
// its tables' UUIDs are free again) when the test ends.
func (e *Env) ModernDatabase(tb testing.TB, prefix string) string {
	tb.Helper()
	name := ScratchName(prefix)
	if _, err := e.ModernQuery("CREATE DATABASE " + name + " ENGINE = Atomic"); err != nil {
		tb.Fatalf("create scratch database %s on ch-modern: %v", name, err)
	}
	tb.Cleanup(func() { _, _ = e.ModernQuery("DROP DATABASE IF EXISTS " + name + " SYNC") })
	return name
}

// ModernQuery runs one statement on ch-modern through its HTTP interface and returns the answer
// without its trailing newline.
func (e *Env) ModernQuery(sql string) (string, error) {
	return httpQuery(e.CHModernHTTP, sql)
}

// CHExec runs one statement on replica i (0-based) through its HTTP interface.
func (e *Env) CHExec(i int, sql string) error {
	_, err := httpQuery(e.CHHTTP[i], sql)
	return err
}

func httpQuery(addr, sql string) (string, error) {
	resp, err := http.Post("http://"+addr+"/", "text/plain", strings.NewReader(sql))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s on %s: %s", sql, addr, strings.TrimSpace(string(body)))
	}
	if err != nil {
		return "", fmt.Errorf("%s on %s: read the answer: %w", sql, addr, err)
	}
	return strings.TrimSuffix(string(body), "\n"), nil
}
