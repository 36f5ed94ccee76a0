package clickhouse

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/tracevault/tracevault/snapshot"
	"github.com/tracevault/tracevault/snapshot/clickhouse/internal/chtest"
)

// cancelAfterFreeze is a real server's connection whose FREEZE runs on the server and is then
// reported as cancelled, the backup's context with it: what a backup sees when another
// partition's failure cancels it, or the connection breaks, just as the server froze.
type cancelAfterFreeze struct {
	driver.Conn
	cancel context.CancelFunc
}

func (c cancelAfterFreeze) Exec(ctx context.Context, sql string, args ...any) error {
	if !strings.Contains(sql, " FREEZE ") {
		return c.Conn.Exec(ctx, sql, args...)
	}
	if err := c.Conn.Exec(ctx, sql, args...); err != nil {
		return err
	}
	c.cancel()
	return ctx.Err()
}

// TestFreezeReportedFailedLeavesNoShadow: a FREEZE the server made but the backup saw fail
// leaves no shadow directory, on 18.16 (numbered by shadow/increment.txt) and on ch-modern
// (FREEZE ... WITH NAME). Before the fix, a freeze whose connection broke left its hard links
// pinning the parts' disk space, found by the next backup's tests on ch-modern after the chaos
// suite killed the server mid-freeze.
func TestFreezeReportedFailedLeavesNoShadow(t *testing.T) {
	cases := []struct {
		name      string
		open      func(t *testing.T) (srv *Server, db, table, partition string, shadow func() []string)
		withNamed bool
	}{
		{"18.16", func(t *testing.T) (*Server, string, string, string, func() []string) {
			env, db := chtest.FreezeTable(t)
			srv, err := Dial(context.Background(), env.CHNative[0], ConnOptions{User: "default"})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { srv.Close() })
			return srv, db, "t", "202607", func() []string { return shadowEntries(t, env) }
		}, false},
		{"ch-modern", func(t *testing.T) (*Server, string, string, string, func() []string) {
			f, srv := patchableTable(t)
			return srv, f.DB, "t", "202605", func() []string { return f.Shadow(t) }
		}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv, db, table, partition, shadow := tc.open(t)
			if srv.Caps.FreezeWithName != tc.withNamed {
				t.Fatalf("ClickHouse %s: FREEZE WITH NAME %v; this case tests %v", srv.Caps.Version, srv.Caps.FreezeWithName, tc.withNamed)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			root, err := NewLocalFS("", []*Server{srv}).root(ctx, srv)
			if err != nil {
				t.Fatal(err)
			}
			broken := *srv
			broken.Conn = cancelAfterFreeze{Conn: srv.Conn, cancel: cancel}
			f, err := freezePartition(ctx, &broken, root, db, table, partition)
			if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "freeze "+db+"."+table+" partition "+partition) {
				t.Errorf("freeze reported cancelled: %v, %+v; want context.Canceled naming the partition", err, f)
			}
			if left := shadow(); len(left) > 0 {
				t.Errorf("shadow directories left by a freeze reported failed: %v", left)
			}
		})
	}
}

// TestModernFreezeBackupRemovesStaleFreezes: a freeze-mode backup removes the freezes a killed
// tracevault left (named tracevault_…, last changed over a day ago) on the disk of a server it
// freezes on, and keeps a fresh one, which may be another backup's upload in progress.
func TestModernFreezeBackupRemovesStaleFreezes(t *testing.T) {
	f, _ := patchableTable(t)
	ctx := context.Background()
	stale, fresh := freezePrefix+"5a1e5a1e5a1e5a1e", freezePrefix+"f4e5f4e5f4e5f4e5"
	for _, name := range []string{stale, fresh} {
		f.SQL(t, "ALTER TABLE "+f.DB+".t FREEZE PARTITION ID '202605' WITH NAME '"+name+"'")
	}
	shadow := filepath.Join(f.Env.CHModernData, "shadow")
	t.Cleanup(func() { _ = os.RemoveAll(filepath.Join(shadow, fresh)); _ = os.RemoveAll(filepath.Join(shadow, stale)) })
	old := time.Now().Add(-staleFreezeAge - time.Hour)
	if err := os.Chtimes(filepath.Join(shadow, stale), old, old); err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	src := &Source{Native: []string{f.Env.CHModernNative}, HTTP: []string{f.Env.CHModernHTTP}, Conn: ConnOptions{User: "default"}, Filter: Filter{Databases: []string{f.DB}},
		Mode: ModeFreeze, Log: slog.New(slog.NewTextHandler(&logged, nil))}
	if _, err := snapshot.Run(ctx, f.Repo, []snapshot.Source{src}, snapshot.Options{Log: chtest.Quiet}); err != nil {
		t.Fatal(err)
	}
	if left := f.Shadow(t); !slices.Equal(left, []string{fresh}) {
		t.Errorf("freezes after the backup: %v; want only the fresh %s", left, fresh)
	}
	if !strings.Contains(logged.String(), "killed tracevault") || !strings.Contains(logged.String(), stale) {
		t.Errorf("the backup's log does not name the stale freeze it removed:\n%s", logged.String())
	}
}
