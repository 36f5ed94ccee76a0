package chaos

import (
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tracevault/tracevault/demo"
)

// TestLedgerDiff: the records reconcile appends turn the ledger's final state of a load run into
// what ch-modern holds of it, so that replaying them gives the live rows exactly: a row applied
// but never acknowledged is inserted, one deleted so is erased, one updated so takes the live
// values, and the rows that agree are left alone.
func TestLedgerDiff(t *testing.T) {
	at := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	row := func(p, out string) demo.LedgerRow {
		return demo.LedgerRow{Partition: p, Values: map[string]string{"bookmarked": "false", "public": "false", "output": out}}
	}
	for _, tc := range []struct {
		name       string
		want, live map[string]demo.LedgerRow
		ops        []string
	}{
		{"agreeing", map[string]demo.LedgerRow{"a": row("202612", "o")}, map[string]demo.LedgerRow{"a": row("202612", "o")}, nil},
		{"an insert applied", map[string]demo.LedgerRow{"a": row("202612", "o")},
			map[string]demo.LedgerRow{"a": row("202612", "o"), "b": row("202612", "o"), "c": row("202611", "o")}, []string{"insert b", "insert c"}},
		{"a delete applied", map[string]demo.LedgerRow{"a": row("202612", "o"), "b": row("202612", "o")},
			map[string]demo.LedgerRow{"b": row("202612", "o")}, []string{"erase a"}},
		{"an update applied", map[string]demo.LedgerRow{"a": row("202612", "o"), "b": row("202612", "o")},
			map[string]demo.LedgerRow{"a": row("202612", "edited"), "b": row("202612", "o")}, []string{"update a"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ledgerDiff("clickhouse:events_full", tc.want, tc.live, at)
			var ops []string
			replay := demo.NewLedgerReplay(demo.ModernTracked)
			for id, r := range tc.want {
				if _, err := replay.Apply(demo.LedgerRecord{Table: "clickhouse:events_full", Partition: r.Partition, Op: demo.OpInsert, IDs: []string{id}, Set: r.Values}); err != nil {
					t.Fatal(err)
				}
			}
			for _, r := range got {
				if !r.Acked.Equal(at) {
					t.Errorf("%s of %v acknowledged at %s, want %s", r.Op, r.IDs, r.Acked, at)
				}
				ops = append(ops, r.Op+" "+strings.Join(r.IDs, ","))
				if _, err := replay.Apply(r); err != nil {
					t.Fatal(err)
				}
			}
			slices.Sort(ops)
			if !slices.Equal(ops, tc.ops) {
				t.Errorf("records %v, want %v", ops, tc.ops)
			}
			if live := replay.Rows["clickhouse:events_full"]; !reflect.DeepEqual(live, tc.live) {
				t.Errorf("the ledger replayed with them holds %v; ch-modern %v", live, tc.live)
			}
		})
	}
}

// TestMatchWindow: a restored partition must read as the ledger had it at the table's cut or
// after a later record sent up to the snapshot's end (one in flight at the end may be there or
// not); an update or delete acknowledged before the cut and missing, one sent after the end and
// present, or a row the ledger never held make it fail.
func TestMatchWindow(t *testing.T) {
	const key = "clickhouse:events_full"
	t0 := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	vals := func(out, bookmarked string) map[string]string {
		return map[string]string{"bookmarked": bookmarked, "public": "false", "output": out}
	}
	records := []demo.LedgerRecord{
		{Acked: at(1), Table: key, Partition: "202612", Op: demo.OpInsert, IDs: []string{"a", "b", "c"}, Set: vals("o", "false")},
		{Acked: at(1), Table: key, Partition: "202611", Op: demo.OpInsert, IDs: []string{"late"}, Set: vals("o", "false")},
		{Acked: at(2), Table: key, Partition: "202612", Op: demo.OpUpdate, IDs: []string{"a"}, Set: map[string]string{"bookmarked": "true"}},
		{Acked: at(2), Table: key, Partition: "202612", Op: demo.OpErase, IDs: []string{"c"}},
		{Acked: at(2), Table: "clickhouse:events_core", Partition: "202612", Op: demo.OpErase, IDs: []string{"a"}},
		// the cut: 3
		{Acked: at(4), Table: key, Partition: "202612", Op: demo.OpUpdate, IDs: []string{"b"}, Set: map[string]string{"output": "edited"}},
		{Acked: at(5), Table: key, Partition: "202701", Op: demo.OpInsert, IDs: []string{"new"}, Set: vals("o", "false")},
		{Acked: at(5), Table: key, Partition: "202611", Op: demo.OpErase, IDs: []string{"late"}},
		// the end: 6
		{Acked: at(7), Table: key, Partition: "202612", Op: demo.OpErase, IDs: []string{"a"}},
		// in flight at the end: sent before it, acknowledged after
		{Sent: at(5), Acked: at(8), Table: key, Partition: "202612", Op: demo.OpUpdate, IDs: []string{"b"}, Set: map[string]string{"bookmarked": "true"}},
	}
	each := func(fn func(demo.LedgerRecord) error) error {
		for _, r := range records {
			if err := fn(r); err != nil {
				return err
			}
		}
		return nil
	}
	row := func(p, out, bookmarked string) demo.LedgerRow {
		return demo.LedgerRow{Partition: p, Values: vals(out, bookmarked)}
	}
	atCut := map[string]demo.LedgerRow{"a": row("202612", "o", "true"), "b": row("202612", "o", "false"), "late": row("202611", "o", "false")}
	with := func(changes map[string]demo.LedgerRow, drop ...string) map[string]demo.LedgerRow {
		out := maps.Clone(atCut)
		maps.Copy(out, changes)
		for _, id := range drop {
			delete(out, id)
		}
		return out
	}
	for _, tc := range []struct {
		name      string
		got       map[string]demo.LedgerRow
		unmatched []string
	}{
		{"as at the cut", atCut, nil},
		{"every partition after the window's writes", with(map[string]demo.LedgerRow{"b": row("202612", "edited", "false"), "new": row("202701", "o", "false")}, "late"), nil},
		{"one partition before a later write, one after", with(map[string]demo.LedgerRow{"b": row("202612", "edited", "false")}), nil},
		{"an update before the cut lost", with(map[string]demo.LedgerRow{"a": row("202612", "o", "false")}), []string{"202612"}},
		{"a delete before the cut lost", with(map[string]demo.LedgerRow{"c": row("202612", "o", "false")}), []string{"202612"}},
		{"a row erased within the window gone", with(nil, "late"), nil},
		{"a row lost", with(nil, "b"), []string{"202612"}},
		{"a delete after the end present", with(nil, "a"), []string{"202612"}},
		{"an update in flight at the end present", with(map[string]demo.LedgerRow{"b": row("202612", "edited", "true")}), nil},
		{"a row the ledger never held", with(map[string]demo.LedgerRow{"x": row("202610", "o", "false")}), []string{"202610"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, err := matchWindow(each, key, demo.ModernTracked, at(3), at(6), tc.got)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(w.unmatched, tc.unmatched) {
				t.Errorf("unmatched partitions %v, want %v", w.unmatched, tc.unmatched)
			}
			if !reflect.DeepEqual(w.atCut, atCut) || w.updates != 1 || w.erased != 1 {
				t.Errorf("at the cut %v, %d updates, %d erased; want %v, 1, 1", w.atCut, w.updates, w.erased, atCut)
			}
		})
	}
}
