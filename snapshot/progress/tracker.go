package progress

import (
	"sync"
	"time"
)

// Tracker is a Reporter that keeps the totals for renderers to sample: a terminal bar, log lines
// and JSON events all show the same State.
type Tracker struct {
	now func() time.Time

	mu       sync.Mutex
	start    time.Time
	state    State
	objects  map[string]Unit // planned units read by object, to name them and count their rows
	finished map[string]bool // objects whose rows were counted: a second read does not count twice
	// open are the units begun and not ended: when a run fails, what it was doing (a failed unit
	// never ends), rather than whichever unit began last.
	open map[Unit]int
}

// State is a sample of the progress.
type State struct {
	Bytes         int64   `json:"bytes"`
	Rows          int64   `json:"rows"`
	ExpectedBytes int64   `json:"expected_bytes"` // 0 when nothing was planned
	ExpectedRows  int64   `json:"expected_rows"`
	Units         int     `json:"units"` // completed
	PlannedUnits  int     `json:"planned_units"`
	Current       Unit    `json:"current"`
	Open          []Unit  `json:"open,omitempty"` // begun and not ended, in no particular order
	Elapsed       float64 `json:"elapsed_seconds"`
	// Rate is the mean bytes per second since the start; ETA the seconds left at that rate,
	// -1 when unknown (no plan, or nothing moved yet).
	Rate float64 `json:"bytes_per_second"`
	ETA  float64 `json:"eta_seconds"`
}

// NewTracker starts the clock.
func NewTracker() *Tracker {
	return newTracker(time.Now)
}

func newTracker(now func() time.Time) *Tracker {
	return &Tracker{now: now, start: now(), objects: map[string]Unit{}, finished: map[string]bool{}, open: map[Unit]int{}}
}

func (t *Tracker) Plan(u Unit) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if u.Object != "" {
		if _, dup := t.objects[u.Object]; dup {
			return // several snapshots or tables may share an object; it is read once
		}
		t.objects[u.Object] = u
	}
	t.state.ExpectedBytes += u.Bytes
	t.state.ExpectedRows += u.Rows
	t.state.PlannedUnits++
}

func (t *Tracker) Begin(u Unit) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if p, ok := t.objects[u.Object]; ok && u.Object != "" && u.Source == "" && u.Table == "" {
		u = p
	}
	u.Bytes, u.Rows = 0, 0
	t.state.Current = u
	t.open[u]++
}

func (t *Tracker) Add(bytes, rows int64) {
	t.mu.Lock()
	t.state.Bytes += bytes
	t.state.Rows += rows
	t.mu.Unlock()
}

func (t *Tracker) End(u Unit) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if p, ok := t.objects[u.Object]; ok && u.Object != "" {
		if t.finished[u.Object] {
			// A planned object read a second time (a retry, a verify after the load) is one
			// unit: counting it again would report more units done than planned.
			t.closeUnit(u, p)
			return
		}
		t.finished[u.Object] = true
		t.state.Rows += p.Rows
		t.closeUnit(u, p)
	} else {
		t.closeUnit(u, u)
	}
	t.state.Units++
}

// closeUnit takes u off the open units, under the name Begin gave it (p, for an object the plan
// names).
func (t *Tracker) closeUnit(u, p Unit) {
	for _, k := range []Unit{u, p} {
		k.Bytes, k.Rows = 0, 0
		if t.open[k] > 0 {
			t.open[k]--
			if t.open[k] == 0 {
				delete(t.open, k)
			}
			return
		}
	}
}

// State samples the progress now.
func (t *Tracker) State() State {
	t.mu.Lock()
	s := t.state
	for u := range t.open {
		s.Open = append(s.Open, u)
	}
	t.mu.Unlock()
	s.Elapsed = t.now().Sub(t.start).Seconds()
	s.ETA = -1
	if s.Elapsed > 0 {
		s.Rate = float64(s.Bytes) / s.Elapsed
	}
	if s.ExpectedBytes > 0 && s.Rate > 0 {
		s.ETA = max(0, float64(s.ExpectedBytes-s.Bytes)/s.Rate)
	}
	return s
}
