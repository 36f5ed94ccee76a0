package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/tracevault/tracevault/snapshot"
	"github.com/tracevault/tracevault/snapshot/clickhouse/internal/chtest"
	"github.com/tracevault/tracevault/snapshot/store"
)

// TestModernFreezeRefusesPatchedPartition: freeze mode exports a partition logically when it
// has patch parts, which FREEZE leaves out. One updated between its listing and its freeze is
// caught right after the freeze (errPatchParts), with the freeze removed, so that the backup
// exports it logically. The listing names the patch parts with their partition; FREEZE, as
// measured here, holds the partition's parts alone. Without http_addresses, freeze mode backs up
// an unchanged patched partition by reuse, and says what to set when one must be exported.
func TestModernFreezePatchedPartition(t *testing.T) {
	f, srv := patchableTable(t)
	ctx := context.Background()
	root, err := NewLocalFS("", []*Server{srv}).root(ctx, srv)
	if err != nil {
		t.Fatal(err)
	}

	fz, err := freezeUnpatched(ctx, srv, root, f.DB, "t", "202605")
	if err != nil {
		t.Fatalf("freeze of a partition without patch parts: %v", err)
	}
	if len(fz.parts) != 1 {
		t.Errorf("frozen parts %v; want the partition's one part", fz.parts)
	}
	if err := fz.remove(); err != nil {
		t.Fatal(err)
	}

	f.SQL(t, "UPDATE "+f.DB+".t SET v = 'second' WHERE id % 10 = 1")
	listed, err := Partitions(ctx, srv, f.DB, "t")
	if err != nil {
		t.Fatal(err)
	}
	if len(listed) != 1 || listed[0].ID != "202605" || len(listed[0].Patches) != 1 || len(listed[0].Parts) != 1 {
		t.Fatalf("listed %+v; want partition 202605 with its part and its patch part", listed)
	}
	// What FREEZE holds of a partition with a patch part: its parts alone (ClickHouse#116677).
	// Should a release carry patch parts, freeze mode could carry them too (see errPatchParts).
	raw, err := freezePartition(ctx, srv, root, f.DB, "t", "202605")
	if err != nil {
		t.Fatal(err)
	}
	if err := raw.remove(); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(raw.parts) != fmt.Sprint(listed[0].Parts) {
		t.Errorf("FREEZE PARTITION ID '202605' froze %v; the partition's parts are %v and its patch parts %v", raw.parts, listed[0].Parts, listed[0].Patches)
	}
	if _, err := freezeUnpatched(ctx, srv, root, f.DB, "t", "202605"); !errors.Is(err, errPatchParts) {
		t.Errorf("freeze of a partition with a patch part: %v; want errPatchParts", err)
	}
	if left := f.Shadow(t); len(left) > 0 {
		t.Errorf("shadow directories left: %v", left)
	}

	// The logical export needs the HTTP interface, which freeze mode may do without: only a
	// patched partition that must be exported again asks for it.
	backup := func(http []string) (*store.Manifest, error) {
		src := &Source{Native: []string{f.Env.CHModernNative}, HTTP: http, Conn: ConnOptions{User: "default"}, Filter: Filter{Databases: []string{f.DB}},
			Mode: ModeFreeze, Log: chtest.Quiet}
		return snapshot.Run(ctx, f.Repo, []snapshot.Source{src}, snapshot.Options{Log: chtest.Quiet})
	}
	m, err := backup([]string{f.Env.CHModernHTTP})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Objects) != 1 || m.Objects[0].Partition != "202605" {
		t.Fatalf("objects %+v; want partition 202605's", m.Objects)
	}
	if m, err = backup(nil); err != nil || m.Totals().Reused != 1 {
		t.Errorf("freeze backup without http_addresses of the unchanged partition: %v; want its object reused", err)
	}
	f.SQL(t, "UPDATE "+f.DB+".t SET v = 'third' WHERE id % 10 = 2")
	if _, err := backup(nil); err == nil || !strings.Contains(err.Error(), "patch parts") || !strings.Contains(err.Error(), "http_addresses") {
		t.Errorf("freeze backup without http_addresses of a partition updated since: %v; want the cause and the fix", err)
	}
}

// patchableTable creates, on ch-modern, table t of 100 rows in partition 202605 with the
// block-number columns lightweight updates need and merges stopped, so that every update and
// delete leaves a patch part beside the partition's parts; srv is closed when the test ends.
func patchableTable(t *testing.T) (*chtest.Modern, *Server) {
	t.Helper()
	f := chtest.NewModern(t, true)
	srv, err := Dial(context.Background(), f.Env.CHModernNative, ConnOptions{User: "default"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	if !srv.Caps.PatchParts {
		t.Fatalf("ClickHouse %s detected without patch parts", srv.Caps.Version)
	}
	f.SQL(t, "CREATE TABLE "+f.DB+".t (id UInt64, d Date, v String) ENGINE = MergeTree PARTITION BY toYYYYMM(d) ORDER BY id SETTINGS enable_block_number_column = 1, enable_block_offset_column = 1")
	f.SQL(t, "SYSTEM STOP MERGES "+f.DB+".t")
	f.SQL(t, "INSERT INTO "+f.DB+".t SELECT number, '2026-05-01', 'first' FROM numbers(100)")
	return f, srv
}
