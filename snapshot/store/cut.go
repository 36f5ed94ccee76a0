package store

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// Cut is the moment a snapshot set stands for: every write a source acknowledged before Time
// is in the snapshot. Writes after it may be in it too (a source's cut is a lower bound: the
// PostgreSQL snapshot, the moment a ClickHouse table's export began), so a restore holds
// everything before Time and some of what followed, never less.
type Cut struct {
	// Time is the set's cut: the earliest of its sources' cuts.
	Time time.Time `json:"time"`
	// SkewSeconds is between the earliest and the latest source cut: how far apart the moments
	// the sources stand for are, the window in which one source may hold a write another lacks.
	SkewSeconds float64     `json:"skew_seconds"`
	Sources     []SourceCut `json:"sources"`
}

// SourceCut is one source's cut.
type SourceCut struct {
	Source string    `json:"source"`
	Time   time.Time `json:"time"`
	// Position is the source's own mark of it, e.g. PostgreSQL's WAL LSN, or the newest
	// version a ClickHouse export held.
	Position string `json:"position,omitempty"`
}

// NewCut makes a set's cut from its sources' cuts; nil when none recorded one.
func NewCut(sources []SourceCut) *Cut {
	if len(sources) == 0 {
		return nil
	}
	c := &Cut{Time: sources[0].Time, Sources: sources}
	last := c.Time
	for _, s := range sources[1:] {
		if s.Time.Before(c.Time) {
			c.Time = s.Time
		}
		if s.Time.After(last) {
			last = s.Time
		}
	}
	c.SkewSeconds = last.Sub(c.Time).Seconds()
	return c
}

// Skew is SkewSeconds as a duration, rounded: most nanosecond counts have no exact float64 of
// seconds, and truncating would lose one.
func (c *Cut) Skew() time.Duration {
	return time.Duration(math.Round(c.SkewSeconds * float64(time.Second)))
}

// String says what the cut means, in one line; a manifest from before cuts were recorded (or a
// partial set) has none.
func (c *Cut) String() string {
	if c == nil {
		return "not recorded"
	}
	parts := make([]string, len(c.Sources))
	for i, s := range c.Sources {
		parts[i] = s.Source + " " + s.Time.UTC().Format("15:04:05.000")
		if s.Position != "" {
			parts[i] += " (" + s.Position + ")"
		}
	}
	return fmt.Sprintf("%s: every write acknowledged before it is in the snapshot; skew %s between sources: %s",
		c.Time.UTC().Format("2006-01-02T15:04:05.000Z"), c.Skew().Round(time.Millisecond), strings.Join(parts, ", "))
}
