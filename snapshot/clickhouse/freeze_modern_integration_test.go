package clickhouse

import (
	"context"
	"os"
	"testing"

	"github.com/tracevault/tracevault/snapshot/clickhouse/internal/chtest"
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
