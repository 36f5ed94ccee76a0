package chaos

import (
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
