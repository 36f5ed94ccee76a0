package clickhouse

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/tracevault/tracevault/snapshot"
	"github.com/tracevault/tracevault/snapshot/clickhouse/internal/chtest"
	"github.com/tracevault/tracevault/snapshot/store"
)

// TestModernFreezeVanishedPartition: a partition dropped between its listing and its freeze
// (DROP PARTITION, a TTL) freezes to nothing, where the server makes no shadow directory. Its
// object is an empty archive, as a logical object of it would be empty, not a failed backup.
func TestModernFreezeVanishedPartition(t *testing.T) {
	f := chtest.NewModern(t, true)
	f.SQL(t, "CREATE TABLE "+f.DB+".events "+chtest.ModernColumns+") ENGINE = MergeTree PARTITION BY toYYYYMM(ts) ORDER BY (project, id)")
	f.SQL(t, chtest.ModernRows(f.DB, "events", 5, 100, 1))
	ctx := context.Background()
	srv, err := Dial(ctx, f.Env.CHModernNative, ConnOptions{User: "default"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	root, err := NewLocalFS("").root(ctx, srv)
	if err != nil {
		t.Fatal(err)
	}
	f.SQL(t, "ALTER TABLE "+f.DB+".events DROP PARTITION ID '202605'")
	fz := &freezeReader{freeze: func() (*frozen, error) { return freezePartition(ctx, srv, root, f.DB, "events", "202605") }}
	dst := t.TempDir()
	parts, err := extractPartsTar(fz, dst, os.Getuid(), os.Getgid())
	if err != nil {
		t.Fatalf("freeze of a dropped partition: %v; want an empty archive", err)
	}
	if len(parts) != 0 || fz.Rows() != 0 {
		t.Errorf("dropped partition froze to parts %v, %d rows; want none", parts, fz.Rows())
	}
	if err := fz.Close(); err != nil {
		t.Fatal(err)
	}
	if left := f.Shadow(t); len(left) > 0 {
		t.Errorf("shadow directories left: %v", left)
	}
}

// TestModernFreezeOtherDisk: freeze mode reads the default disk. A table kept on another disk
// (storage policy "second", which the stack gives ch-modern) is refused before anything is
// frozen, with the fix, and leaves no shadow on either disk; logical mode, the fix, backs it up.
func TestModernFreezeOtherDisk(t *testing.T) {
	f := chtest.NewModern(t, true)
	second := f.SQL(t, "SELECT path FROM system.disks WHERE name = 'second'")
	if second == "" {
		t.Skip("ch-modern has no disk \"second\": its stack was started before it had one; restart it: deploy/stack/stack.sh stop ch-modern, then start ch-modern")
	}
	f.SQL(t, "CREATE TABLE "+f.DB+".events "+chtest.ModernColumns+") ENGINE = MergeTree PARTITION BY toYYYYMM(ts) ORDER BY (project, id) SETTINGS storage_policy = 'second'")
	f.SQL(t, chtest.ModernRows(f.DB, "events", 5, 100, 1))
	if got := f.SQL(t, "SELECT toString(data_paths) FROM system.tables WHERE database = '"+f.DB+"' AND name = 'events'"); !strings.Contains(got, second) {
		t.Fatalf("events keeps its parts in %s; want them on disk second (%s)", got, second)
	}
	backup := func(mode string) (*store.Manifest, error) {
		src := &Source{Native: []string{f.Env.CHModernNative}, HTTP: []string{f.Env.CHModernHTTP}, Conn: ConnOptions{User: "default"},
			Filter: Filter{Databases: []string{f.DB}}, Mode: mode, Log: chtest.Quiet}
		return snapshot.Run(context.Background(), f.Repo, []snapshot.Source{src}, snapshot.Options{Log: chtest.Quiet})
	}
	_, err := backup(ModeFreeze)
	if err == nil || !strings.Contains(err.Error(), "default disk") || !strings.Contains(err.Error(), `mode = "logical"`) {
		t.Errorf("freeze backup of a table on another disk: %v; want it refused with the fix", err)
	}
	for _, disk := range []string{f.Env.CHModernData, second} {
		if left := chtest.Freezes(t, disk); len(left) > 0 {
			t.Errorf("freezes left in %s: %v", disk, left)
		}
	}
	m, err := backup(ModeLogical)
	if err != nil {
		t.Fatalf("logical backup of a table on another disk: %v", err)
	}
	if tot := m.Totals(); tot.Objects != 1 {
		t.Errorf("logical backup made %d objects; want one, of partition 202605", tot.Objects)
	}
}
