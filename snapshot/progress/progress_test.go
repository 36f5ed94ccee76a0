package progress

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

// TestTracker: a plan sums the expected totals (an object shared by two snapshots once); a
// reader naming only an object shows the planned table and partition; an object's rows count at
// its end, once; the ETA follows the mean rate.
func TestTracker(t *testing.T) {
	now := time.Unix(1000, 0)
	tr := newTracker(func() time.Time { return now })
	traces := Unit{Source: "clickhouse", Table: "default.traces", Partition: "202605", Object: "o1", Bytes: 600, Rows: 6}
	tr.Plan(traces)
	tr.Plan(traces) // the same object in another snapshot
	tr.Plan(Unit{Source: "postgres", Table: "public.users", Object: "o2", Bytes: 400, Rows: 4})

	tr.Begin(Unit{Object: "o1"})
	tr.Add(300, 0)
	now = now.Add(3 * time.Second)
	s := tr.State()
	if s.ExpectedBytes != 1000 || s.ExpectedRows != 10 || s.PlannedUnits != 2 {
		t.Errorf("plan = %d bytes, %d rows, %d units; want 1000, 10, 2", s.ExpectedBytes, s.ExpectedRows, s.PlannedUnits)
	}
	if got := s.Current.String(); got != "clickhouse default.traces 202605" {
		t.Errorf("current = %q, want the planned names", got)
	}
	if s.Rate != 100 || s.ETA != 7 {
		t.Errorf("rate %v B/s, ETA %vs; want 100 and 7", s.Rate, s.ETA)
	}
	tr.Add(300, 0)
	tr.End(Unit{Object: "o1"})
	tr.End(Unit{Object: "o1"}) // read twice (a retry): its rows and its unit count once
	if s := tr.State(); s.Rows != 6 || s.Units != 1 || s.Bytes != 600 || len(s.Open) != 0 {
		t.Errorf("after o1: %d rows, %d units, %d bytes, open %v; want 6, 1, 600, none", s.Rows, s.Units, s.Bytes, s.Open)
	}
	tr.Begin(Unit{Object: "o2"})        // fails: never ends
	tr.Begin(Unit{Source: "zookeeper"}) // unplanned: shown as it is
	if s := tr.State(); s.Current.String() != "zookeeper" {
		t.Errorf("current = %q", s.Current.String())
	}
	tr.End(Unit{Source: "zookeeper"})
	// What was unfinished is postgres, though zookeeper began last.
	if s := tr.State(); len(s.Open) != 1 || s.Open[0].String() != "postgres public.users" || s.Units != 2 {
		t.Errorf("open %v, %d units; want only postgres public.users open, 2 units", s.Open, s.Units)
	}
}

// TestReader: bytes count as they are read; the unit ends only at a clean EOF, never at an error
// (a checksum mismatch below surfaces as one), and a Nop reporter leaves the reader as it is.
func TestReader(t *testing.T) {
	tests := []struct {
		name    string
		src     io.Reader
		uncount bool // the work failed: Uncount takes its bytes back
		bytes   int64
		ended   int
	}{
		{"clean", strings.NewReader("hello world"), false, 11, 1},
		{"corrupt at the end", io.MultiReader(strings.NewReader("hello"), errReader{errors.New("object is corrupt")}), false, 5, 0},
		{"broke off, to be done again", io.MultiReader(strings.NewReader("hello"), errReader{errors.New("connection reset")}), true, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := NewTracker()
			ctx := With(context.Background(), tr)
			tr.Add(100, 0) // another unit's
			r := Reader(From(ctx), tc.src, Unit{Object: "x"}, true)
			_, _ = io.Copy(io.Discard, r)
			if tc.uncount {
				Uncount(r)
				Uncount(r) // once is all it takes back
			}
			if s := tr.State(); s.Bytes-100 != tc.bytes || s.Units != tc.ended {
				t.Errorf("%d bytes, %d ended; want %d, %d", s.Bytes-100, s.Units, tc.bytes, tc.ended)
			}
		})
	}
	src := strings.NewReader("x")
	if Reader(From(context.Background()), src, Unit{}, true) != io.Reader(src) {
		t.Error("without a reporter the reader should be left as it is")
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }
