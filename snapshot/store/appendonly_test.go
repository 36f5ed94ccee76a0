package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestAppendOnlyRefusesRewritesAndDeletes: through an append-only repository a new object is
// created, while a rewrite, a delete, prune and delete of a snapshot are refused, naming the
// separate identity that may do them.
func TestAppendOnlyRefusesRewritesAndDeletes(t *testing.T) {
	ctx := context.Background()
	fsb, err := NewFS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r := openRepo(t, fsb, Options{AppendOnly: true})
	if err := r.PutJSON(ctx, "runs/a.json", map[string]int{"n": 1}); err != nil {
		t.Fatalf("a new object: %v", err)
	}
	tests := []struct {
		name string
		do   func() error
	}{
		{"rewrite", func() error { return r.PutJSON(ctx, "runs/a.json", map[string]int{"n": 2}) }},
		{"delete", func() error { return r.Backend().Delete(ctx, "runs/a.json") }},
		{"prune", func() error { _, err := r.Prune(ctx, Retention{KeepLast: 1}, false, 0); return err }},
		{"delete a snapshot", func() error { return r.DeleteSnapshot(ctx, "20261206T100000Z-1a2b3c") }},
	}
	for _, tt := range tests {
		err := tt.do()
		if !errors.Is(err, ErrAppendOnly) {
			t.Errorf("%s: %v; want ErrAppendOnly", tt.name, err)
		}
		if tt.name != "rewrite" && (err == nil || !strings.Contains(err.Error(), "separate identity")) {
			t.Errorf("%s: %v; want the fix named", tt.name, err)
		}
	}
	var v map[string]int
	if err := r.GetJSON(ctx, "runs/a.json", &v); err != nil || v["n"] != 1 {
		t.Errorf("the object after the refused rewrite: %v, %v; want it as written", v, err)
	}
}

// TestLeaseAndCreateOnlyLocksExcludeEachOther: the identity that may delete (prune, with a lease
// lock) and an append-only daemon (create-only lock) on one repository never hold it together.
func TestLeaseAndCreateOnlyLocksExcludeEachOther(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	open := func(appendOnly bool) *Repository {
		b, err := NewFS(dir)
		if err != nil {
			t.Fatal(err)
		}
		return openRepo(t, b, Options{AppendOnly: appendOnly})
	}
	daemon, pruner := open(true), open(false)
	l, err := daemon.Lock(ctx, "backup", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pruner.Lock(ctx, "prune", 0); !errors.Is(err, ErrLocked) {
		t.Fatalf("prune while the append-only daemon holds the lock: %v; want ErrLocked", err)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	pl, err := pruner.Lock(ctx, "prune", 0)
	if err != nil {
		t.Fatalf("prune after the daemon released: %v", err)
	}
	if _, err := daemon.Lock(ctx, "backup", 0); !errors.Is(err, ErrLocked) {
		t.Fatalf("backup while prune holds the lock: %v; want ErrLocked", err)
	}
	time.Sleep(50 * time.Millisecond)
	if err := Confirm(ctx, pl); err != nil {
		t.Fatalf("prune's lock: %v", err)
	}
	if err := pl.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if l, err := daemon.Lock(ctx, "backup", 0); err != nil {
		t.Fatalf("backup after prune released: %v", err)
	} else {
		_ = l.Release(ctx)
	}
}

// TestPruneSweepsAppendOnlyLeftovers: prune, as the identity that may delete, removes create-only
// lock generations older than the newest two of their lock, all but the newest verify positions,
// and doctor canaries, once they are older than any lease; it leaves younger ones alone.
func TestPruneSweepsAppendOnlyLeftovers(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	fsb, err := NewFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	ao := openRepo(t, fsb, Options{AppendOnly: true})
	for range 4 { // four generations of the repository lock, each released
		l, err := ao.Lock(ctx, "backup", 0)
		if err != nil {
			t.Fatal(err)
		}
		_ = l.Release(ctx)
	}
	for i := range keepPositions + 3 {
		if err := ao.CreateJSON(ctx, positionPrefix+fmt.Sprintf("20261206T1000%02d.000000000Z-0000.json", i), verifyPosition{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ao.ProbeProtection(ctx); err != nil {
		t.Fatal(err)
	}
	young, err := listNames(ctx, fsb, "")
	if err != nil {
		t.Fatal(err)
	}
	pruner := openRepo(t, fsb, Options{})
	rep, err := pruner.Prune(ctx, Retention{KeepLast: 1}, false, 0)
	if err != nil || rep.LeftoversRemoved != 3 { // only the positions beyond the newest ten
		t.Fatalf("prune of young leftovers: removed %d, %v; want the 3 oldest positions only", rep.LeftoversRemoved, err)
	}
	long := time.Now().Add(-2 * leftoverAge)
	for _, n := range young {
		_ = os.Chtimes(filepath.Join(dir, filepath.FromSlash(n)), long, long)
	}
	rep, err = pruner.Prune(ctx, Retention{KeepLast: 1}, false, 0)
	if err != nil {
		t.Fatal(err)
	}
	left, err := listNames(ctx, fsb, createOnlyPrefix+"repository/")
	if err != nil {
		t.Fatal(err)
	}
	gens := map[string]bool{}
	for _, n := range left {
		gens[strings.TrimPrefix(n, createOnlyPrefix+"repository/")[:20]] = true
	}
	// Generations 1-4 (the daemon's, aged) went; 5 and 6 are the prunes' own, the newest two.
	if len(gens) != 2 || !gens["00000000000000000005"] || !gens["00000000000000000006"] {
		t.Errorf("lock generations left %v (%v): want only the newest two, 5 and 6", gens, left)
	}
	if canaries, _ := listNames(ctx, fsb, doctorPrefix); len(canaries) != 0 {
		t.Errorf("doctor canaries left: %v", canaries)
	}
	if pos, _ := listNames(ctx, fsb, positionPrefix); len(pos) != keepPositions {
		t.Errorf("%d verify positions left, want %d", len(pos), keepPositions)
	}
}

func listNames(ctx context.Context, b Backend, prefix string) ([]string, error) {
	var names []string
	err := b.List(ctx, prefix, func(o ObjectInfo) error {
		names = append(names, o.Name)
		return nil
	})
	return names, err
}
