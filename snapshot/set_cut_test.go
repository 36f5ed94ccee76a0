package snapshot

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tracevault/tracevault/snapshot/store"
)

// cutSource is a Cutter: it prepares (prep), waits for the others, then records its cut.
type cutSource struct {
	testSource
	prep time.Duration
	fail bool // fails while preparing, before it ever reaches the cut
	// ready counts the sources that reached the barrier; each checks that all Cutters which do
	// not fail had when it was released.
	ready, want *atomic.Int32
}

func (s cutSource) TakesCut() {}

func (s cutSource) Backup(ctx context.Context, w *Writer) (any, error) {
	time.Sleep(s.prep)
	if s.fail {
		return nil, errors.New("cannot connect")
	}
	s.ready.Add(1)
	if err := w.AwaitCut(ctx); err != nil {
		return nil, err
	}
	if n := s.ready.Load(); n != s.want.Load() {
		return nil, errors.New("released before every source was ready")
	}
	w.RecordCut(time.Now(), s.name+"-position")
	return s.testSource.Backup(ctx, w)
}

func TestRunTakesTheCutsTogether(t *testing.T) {
	tests := []struct {
		name      string
		prep      []time.Duration // one Cutter each
		failing   int             // index of a Cutter that fails before its cut; -1 none
		plain     bool            // a source that is no Cutter runs too
		status    string
		cutSource int // sources in the recorded cut
	}{
		{"two cutters, one slow to prepare", []time.Duration{0, 300 * time.Millisecond}, -1, false, store.StatusComplete, 2},
		{"with a plain source after them", []time.Duration{100 * time.Millisecond, 0}, -1, true, store.StatusComplete, 2},
		{"a cutter that fails does not hold the other", []time.Duration{0, 200 * time.Millisecond}, 1, false, store.StatusPartial, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			repo, err := store.Open(ctx, store.Options{URL: "file://" + t.TempDir(), Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				t.Fatal(err)
			}
			var ready, want atomic.Int32
			var sources []Source
			for i, prep := range tc.prep {
				name := string(rune('a' + i))
				sources = append(sources, cutSource{testSource: testSource{name, stores(name)}, prep: prep, fail: i == tc.failing, ready: &ready, want: &want})
				if i != tc.failing {
					want.Add(1)
				}
			}
			if tc.plain {
				sources = append(sources, testSource{"plain", stores("plain")})
			}
			start := time.Now()
			m, err := Run(ctx, repo, sources, Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if m == nil || m.Status != tc.status {
				t.Fatalf("status %v, err %v; want %s", m, err, tc.status)
			}
			for i, c := range m.Components {
				if c.Source != sources[i].Name() {
					t.Errorf("component %d is %s, want the sources' order (%s)", i, c.Source, sources[i].Name())
				}
				if c.Status != store.StatusComplete && !strings.Contains(c.Error, "cannot connect") {
					t.Errorf("%s: %s", c.Source, c.Error)
				}
			}
			if tc.cutSource == 0 {
				if m.Cut != nil {
					t.Errorf("a partial set records a cut: %v", m.Cut)
				}
				return
			}
			if m.Cut == nil || len(m.Cut.Sources) != tc.cutSource {
				t.Fatalf("cut %v, want one of %d sources", m.Cut, tc.cutSource)
			}
			earliest, latest := m.Cut.Sources[0].Time, m.Cut.Sources[0].Time
			for _, s := range m.Cut.Sources {
				earliest, latest = minTime(earliest, s.Time), maxTime(latest, s.Time)
				if s.Position != s.Source+"-position" {
					t.Errorf("%s: position %q", s.Source, s.Position)
				}
			}
			if !m.Cut.Time.Equal(earliest) || m.Cut.Skew() != latest.Sub(earliest) || m.Cut.Time.Before(start) {
				t.Errorf("cut %s skew %s; want the earliest of %v and their spread", m.Cut.Time, m.Cut.Skew(), m.Cut.Sources)
			}
			if !strings.Contains(m.Cut.String(), "every write acknowledged before it") {
				t.Errorf("cut text %q", m.Cut.String())
			}
		})
	}
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
