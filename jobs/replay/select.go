package replay

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/tracevault/tracevault/snapshot/blobs"
)

// Event is one key to replay, with the time the container says it was written.
type Event struct {
	Key      string    `json:"key"`
	Modified time.Time `json:"modified"`
}

// Rejected is a key in the window that the route would not replay, and why.
type Rejected struct {
	Key    string `json:"key"`
	Reason string `json:"reason"`
}

// Window is the part of the container a replay covers: blobs modified after Since and no later
// than Until. Until is fixed when a replay starts, so a resumed run walks the same list; events
// written after it were ingested by Langfuse itself.
type Window struct {
	Since time.Time `json:"since"`
	Until time.Time `json:"until"`
}

func (w Window) holds(t time.Time) bool { return t.After(w.Since) && !t.After(w.Until) }

// Selection is what a window of the container holds: the keys to send in time order, and the
// keys that cannot be replayed (counted whole, named up to a limit).
type Selection struct {
	Window    Window         `json:"window"`
	Events    []Event        `json:"-"`
	Count     int            `json:"events"`
	First     time.Time      `json:"first,omitzero"`
	Last      time.Time      `json:"last,omitzero"`
	ByProject map[string]int `json:"by_project"`
	ByType    map[string]int `json:"by_type"`
	// Unreplayable counts the window's keys the route would refuse; Named lists the first of them.
	Unreplayable int        `json:"unreplayable"`
	Named        []Rejected `json:"unreplayable_named,omitempty"`
	// Oldest is the oldest blob the container still holds: a window starting before it may
	// have lost events to the container's lifecycle rule.
	Oldest time.Time `json:"oldest,omitzero"`
}

// NameLimit is how many unreplayable keys a selection names.
const NameLimit = 20

// Select lists container c once and selects the events written in w, oldest first (ties by
// key, so the order is total and a resumed run walks it the same way).
func Select(ctx context.Context, c blobs.Container, w Window) (*Selection, error) {
	s := &Selection{Window: w, ByProject: map[string]int{}, ByType: map[string]int{}}
	err := c.List(ctx, func(e blobs.Entry) error {
		if s.Oldest.IsZero() || e.Modified.Before(s.Oldest) {
			s.Oldest = e.Modified
		}
		if !w.holds(e.Modified) {
			return nil
		}
		project, entity, reason := Classify(e.Name)
		if reason != "" {
			s.Unreplayable++
			if len(s.Named) < NameLimit {
				s.Named = append(s.Named, Rejected{Key: e.Name, Reason: reason})
			}
			return nil
		}
		s.ByProject[project]++
		s.ByType[entity]++
		s.Events = append(s.Events, Event{Key: e.Name, Modified: e.Modified})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("select events after %s: %w", w.Since.Format(time.RFC3339), err)
	}
	slices.SortFunc(s.Events, compareEvents)
	s.Count = len(s.Events)
	if s.Count > 0 {
		s.First, s.Last = s.Events[0].Modified, s.Events[s.Count-1].Modified
	}
	return s, nil
}

func compareEvents(a, b Event) int {
	if c := a.Modified.Compare(b.Modified); c != 0 {
		return c
	}
	return cmp.Compare(a.Key, b.Key)
}

// Gap says whether the container may have lost events of the window to its lifecycle rule:
// with retention (the rule's age) set, a window starting before now-retention reaches past what
// the container keeps. It returns the time before which events may be gone.
func (s *Selection) Gap(now time.Time, retention time.Duration) (time.Time, bool) {
	if retention <= 0 {
		return time.Time{}, false
	}
	kept := now.Add(-retention)
	return kept, s.Window.Since.Before(kept)
}
