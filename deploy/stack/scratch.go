package stack

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"testing"
	"time"

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
