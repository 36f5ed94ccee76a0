package clickhouse

import (
	"context"
	"testing"
)

// TestModernCountVisibleCatchesALaterPatch: a lightweight delete made between a partition's
// listing and the count of its visible rows is applied by the count (a SELECT applies every
// active patch part), so the count describes no listing. countVisible must then mark the
// partition unsettled, giving it a fingerprint no object has or will have; with nothing changed
// it leaves the partition as listed. Without the mark, the modern chaos run stored a complete
// snapshot that reused an object of 1,053 rows and recorded 1,050, which no restore accepts.
func TestModernCountVisibleCatchesALaterPatch(t *testing.T) {
	f, srv := patchableTable(t)
	ctx := context.Background()
	f.SQL(t, "UPDATE "+f.DB+".t SET v = 'second' WHERE id % 10 = 1")

	listing := func() Partition {
		ps, err := Partitions(ctx, srv, f.DB, "t")
		if err != nil || len(ps) != 1 {
			t.Fatalf("list: %v %v", ps, err)
		}
		return ps[0]
	}
	p := listing()
	if p.unsettled != "" || p.visible != 100 || len(p.Patches) == 0 {
		t.Fatalf("a listing with nothing changing: unsettled %q, visible %d, patches %v; want settled, 100, one patch part", p.unsettled, p.visible, p.Patches)
	}
	before := Fingerprint(Table{Database: f.DB, Name: "t"}, nil, p, srv.Addr)

	f.SQL(t, "DELETE FROM "+f.DB+".t WHERE id < 3 SETTINGS lightweight_delete_mode = 'lightweight_update'")
	stale := p
	if err := countVisible(ctx, srv, f.DB, "t", &stale); err != nil {
		t.Fatal(err)
	}
	if stale.unsettled == "" {
		t.Errorf("a delete between the listing and the count (visible now %d): the partition is not marked unsettled", stale.visible)
	}
	again := p
	if err := countVisible(ctx, srv, f.DB, "t", &again); err != nil {
		t.Fatal(err)
	}
	fps := map[string]bool{before: true}
	for _, q := range []Partition{stale, again} {
		fp := Fingerprint(Table{Database: f.DB, Name: "t"}, nil, q, srv.Addr)
		if fps[fp] {
			t.Errorf("an unsettled partition's fingerprint %s repeats another's: a later backup could reuse what it stores", fp)
		}
		fps[fp] = true
	}
	if now := listing(); now.unsettled != "" || now.visible != 97 {
		t.Errorf("listed again after the delete: unsettled %q, visible %d; want settled, 97", now.unsettled, now.visible)
	}
}
