package demo

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestLedgerRowsBefore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger")
	w, err := createLedger(path)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	tr := func(p string) LedgerKey { return LedgerKey{"clickhouse:traces", p} }
	records := []LedgerRecord{
		{Acked: at(0), Table: "clickhouse:traces", Partition: "202611", Op: OpInsert, Version: 100, IDs: []string{"a", "b", "c"}},
		{Acked: at(0), Table: "clickhouse:traces", Partition: "202609", Op: OpInsert, Version: 100, IDs: []string{"late"}},
		{Acked: at(1), Table: "clickhouse:traces", Partition: "202611", Op: OpUpsert, Version: 101, IDs: []string{"a", "b"}},
		{Acked: at(2), Table: "clickhouse:traces", Partition: "202611", Op: OpDelete, Version: 102, IDs: []string{"b"}},
		{Acked: at(2), Table: "postgres:api_keys", Op: OpInsert, IDs: []string{"k1"}},
		{Acked: at(3), Table: "clickhouse:traces", Partition: "202611", Op: OpInsert, Version: 103, IDs: []string{"d"}},
		{Acked: at(3), Table: "postgres:api_keys", Op: OpUpdate, IDs: []string{"k0"}},
		{Acked: at(3), Table: "postgres:api_keys", Op: OpInsert}, // no ids: not written
	}
	for _, r := range records {
		if err := w.append(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.close(); err != nil {
		t.Fatal(err)
	}
	l := Ledger{Path: path}
	for _, tc := range []struct {
		name   string
		before time.Time
		want   map[LedgerKey]LedgerCount
	}{
		{"nothing acknowledged before the first batch", at(0), map[LedgerKey]LedgerCount{}},
		{"first batch only", at(1), map[LedgerKey]LedgerCount{
			tr("202611"): {Rows: 3, IDs: 3, MaxVersion: 100},
			tr("202609"): {Rows: 1, IDs: 1, MaxVersion: 100},
		}},
		// A batch acknowledged at exactly T is not before T: a snapshot cut at T may miss it.
		{"upserts and a tombstone", at(2).Add(time.Nanosecond), map[LedgerKey]LedgerCount{
			tr("202611"):              {Rows: 6, IDs: 3, Deleted: 1, MaxVersion: 102},
			tr("202609"):              {Rows: 1, IDs: 1, MaxVersion: 100},
			{"postgres:api_keys", ""}: {Rows: 1, IDs: 1},
		}},
		{"everything", time.Time{}, map[LedgerKey]LedgerCount{
			tr("202611"):              {Rows: 7, IDs: 4, Deleted: 1, MaxVersion: 103},
			tr("202609"):              {Rows: 1, IDs: 1, MaxVersion: 100},
			{"postgres:api_keys", ""}: {Rows: 1, IDs: 1, Updates: 1},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := l.RowsBefore(tc.before)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("RowsBefore(%s):\n got %+v\nwant %+v", tc.before.Format(time.RFC3339Nano), got, tc.want)
			}
		})
	}
	if c := (LedgerCount{IDs: 4, Deleted: 1}); c.Live() != 3 {
		t.Errorf("Live() = %d, want 3", c.Live())
	}

	var ids []string
	if err := l.Each(at(1), func(r LedgerRecord) error { ids = append(ids, r.IDs...); return nil }); err != nil {
		t.Fatal(err)
	}
	if want := []string{"a", "b", "c", "late"}; !reflect.DeepEqual(ids, want) {
		t.Errorf("Each before the second batch gave ids %v, want %v", ids, want)
	}
}

func TestLedgerTornAndDamaged(t *testing.T) {
	dir := t.TempDir()
	good := `{"t":"2026-11-27T12:00:00Z","table":"clickhouse:traces","p":"202611","op":"insert","v":1,"ids":["a","b"]}` + "\n"
	for _, tc := range []struct {
		name, text string
		wantIDs    int64
		wantErr    string
	}{
		{"torn last record: the writer was killed mid-line", good + `{"t":"2026-11-27T12:00:01Z","table":"clickhouse:tr`, 2, ""},
		{"empty", "", 0, ""},
		{"unknown op", strings.Replace(good, `"insert"`, `"merge"`, 1), 0, `unknown op "merge"`},
		{"garbage in the middle", good + "not json\n" + good, 0, "record 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_"))
			if err := os.WriteFile(path, []byte(tc.text), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := Ledger{Path: path}.RowsBefore(time.Time{})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one saying %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if n := got[LedgerKey{"clickhouse:traces", "202611"}].IDs; n != tc.wantIDs {
				t.Errorf("ids = %d, want %d", n, tc.wantIDs)
			}
		})
	}
	if _, err := (Ledger{Path: filepath.Join(dir, "absent")}).RowsBefore(time.Time{}); err == nil {
		t.Error("a missing ledger file read without error")
	}
}

// TestLedgerExpected: the modern load's writes in place replay into the rows a snapshot cut at
// T must hold, with the values of their tracked columns: updates after T and rows erased,
// tombstoned or truncated before T are where they belong.
func TestLedgerExpected(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger")
	w, err := createLedger(path)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	const ef, legacy = "clickhouse:events_full", "clickhouse:events"
	ins := map[string]string{"bookmarked": "false", "public": "false", "output": "o1"}
	for _, r := range []LedgerRecord{
		{Acked: at(0), Table: ef, Partition: "202612", Op: OpInsert, IDs: []string{"a", "b", "c"}, Set: ins},
		{Acked: at(0), Table: ef, Partition: "202610", Op: OpInsert, IDs: []string{"late"}, Set: ins},
		{Acked: at(0), Table: legacy, Partition: "202612", Op: OpInsert, IDs: []string{"x"}},
		{Acked: at(1), Table: ef, Partition: "202612", Op: OpUpdate, IDs: []string{"a", "seeded"}, Set: map[string]string{"bookmarked": "true"}},
		{Acked: at(2), Table: ef, Partition: "202612", Op: OpUpdate, IDs: []string{"a", "b"}, Set: map[string]string{"output": "edited"}},
		{Acked: at(2), Table: ef, Partition: "202612", Op: OpOptimize},
		{Acked: at(3), Table: ef, Partition: "202610", Op: OpErase, IDs: []string{"late"}},
		{Acked: at(3), Table: legacy, Op: OpTruncate},
		{Acked: at(4), Table: ef, Partition: "202612", Op: OpDelete, IDs: []string{"c"}},
		{Acked: at(4), Table: ef, Partition: "202612", Op: OpUpdate, IDs: []string{"c"}, Set: map[string]string{"public": "true"}},
	} {
		if err := w.append(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.close(); err != nil {
		t.Fatal(err)
	}
	row := func(p, bookmarked, public, output string) LedgerRow {
		return LedgerRow{Partition: p, Values: map[string]string{"bookmarked": bookmarked, "public": public, "output": output}}
	}
	for _, tc := range []struct {
		name   string
		before time.Time
		want   map[string]map[string]LedgerRow
	}{
		{"nothing acknowledged yet", at(0), map[string]map[string]LedgerRow{}},
		{"the inserts, as written", at(1), map[string]map[string]LedgerRow{
			ef: {"a": row("202612", "false", "false", "o1"), "b": row("202612", "false", "false", "o1"),
				"c": row("202612", "false", "false", "o1"), "late": row("202610", "false", "false", "o1")},
			legacy: {"x": {Partition: "202612", Values: map[string]string{}}},
		}},
		// The update of a seeded row the load never inserted changes nothing the ledger knows.
		{"an update, one column of one row", at(2), map[string]map[string]LedgerRow{
			ef: {"a": row("202612", "true", "false", "o1"), "b": row("202612", "false", "false", "o1"),
				"c": row("202612", "false", "false", "o1"), "late": row("202610", "false", "false", "o1")},
			legacy: {"x": {Partition: "202612", Values: map[string]string{}}},
		}},
		{"edits, an erased row and a truncated table", at(4), map[string]map[string]LedgerRow{
			ef: {"a": row("202612", "true", "false", "edited"), "b": row("202612", "false", "false", "edited"),
				"c": row("202612", "false", "false", "o1")},
			legacy: {},
		}},
		// An update of a tombstoned row does not bring it back.
		{"everything", time.Time{}, map[string]map[string]LedgerRow{
			ef:     {"a": row("202612", "true", "false", "edited"), "b": row("202612", "false", "false", "edited")},
			legacy: {},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Ledger{Path: path}.Expected(tc.before)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Expected(%s):\n got %v\nwant %v", tc.before.Format(time.RFC3339), got, tc.want)
			}
			wn, ws := Digest(tc.want[ef], ModernTracked)
			if gn, gs := Digest(got[ef], ModernTracked); gn != wn || gs != ws {
				t.Errorf("Digest = %d, %x; want %d, %x", gn, gs, wn, ws)
			}
		})
	}

	counts, err := Ledger{Path: path}.RowsBefore(time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[LedgerKey]LedgerCount{
		{ef, "202612"}: {Rows: 4, IDs: 3, Deleted: 1, Updates: 5},
		{ef, "202610"}: {Rows: 0, IDs: 0, Erased: 1},
	}
	if !reflect.DeepEqual(counts, want) {
		t.Errorf("RowsBefore(all):\n got %+v\nwant %+v", counts, want)
	}
	a := map[string]LedgerRow{"a": row("1", "true", "false", "x")}
	b := map[string]LedgerRow{"a": row("1", "false", "true", "x")}
	_, sa := Digest(a, ModernTracked)
	if _, sb := Digest(b, ModernTracked); sa == sb {
		t.Error("Digest does not tell bookmarked from public: two rows with the values swapped hash alike")
	}
}

// TestLedgerReplayDigests: after every record, each partition's running digest is the Digest of
// the rows Expected would say it holds, and Apply names the partitions a record changed (a row
// inserted again into another month leaves the first).
func TestLedgerReplayDigests(t *testing.T) {
	const ef = "clickhouse:events_full"
	set := func(v string) map[string]string { return map[string]string{"output": v} }
	records := []LedgerRecord{
		{Table: ef, Partition: "202612", Op: OpInsert, IDs: []string{"a", "b", "c"}, Set: set("o1")},
		{Table: ef, Partition: "202611", Op: OpInsert, IDs: []string{"d"}, Set: set("o1")},
		{Table: ef, Partition: "202612", Op: OpUpdate, IDs: []string{"a", "seeded"}, Set: set("o2")},
		{Table: ef, Partition: "202611", Op: OpUpsert, IDs: []string{"b"}, Set: set("o3")},
		{Table: ef, Partition: "202612", Op: OpOptimize},
		{Table: ef, Partition: "202612", Op: OpErase, IDs: []string{"c", "never"}},
		{Table: ef, Op: OpTruncate},
	}
	touched := [][]LedgerKey{
		{{ef, "202612"}}, {{ef, "202611"}}, {{ef, "202612"}}, {{ef, "202612"}, {ef, "202611"}}, nil, {{ef, "202612"}},
		{{ef, "202612"}, {ef, "202611"}},
	}
	p := NewLedgerReplay(ModernTracked)
	for i, r := range records {
		got, err := p.Apply(r)
		if err != nil {
			t.Fatal(err)
		}
		slices.SortFunc(got, func(a, b LedgerKey) int { return strings.Compare(b.Partition, a.Partition) })
		if !reflect.DeepEqual(got, touched[i]) {
			t.Errorf("record %d (%s): touched %v, want %v", i, r.Op, got, touched[i])
		}
		for _, part := range []string{"202611", "202612"} {
			rows := map[string]LedgerRow{}
			for id, row := range p.Rows[ef] {
				if row.Partition == part {
					rows[id] = row
				}
			}
			n, sum := Digest(rows, ModernTracked)
			if d := p.Digest(LedgerKey{ef, part}); d.Rows != n || d.Sum != sum {
				t.Errorf("after record %d (%s), partition %s: running digest %+v, want %d rows, %x", i, r.Op, part, d, n, sum)
			}
		}
	}
	if _, err := p.Apply(LedgerRecord{Table: ef, Op: "merge"}); err == nil {
		t.Error("an unknown op applied without error")
	}
}
