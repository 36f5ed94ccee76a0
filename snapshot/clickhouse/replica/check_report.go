package replica

import (
	"fmt"
	"io"
	"strings"
)

// WriteReport prints the matrix, then the problems with their fixes.
func WriteReport(w io.Writer, r *Report) {
	width := len("table")
	for _, t := range r.Tables {
		width = max(width, len(t.Table))
	}
	fmt.Fprintf(w, "%-*s", width+2, "table")
	for _, c := range r.Replicas {
		fmt.Fprintf(w, "%-16s", c.Name)
	}
	fmt.Fprintln(w)
	for _, t := range r.Tables {
		fmt.Fprintf(w, "%-*s", width+2, t.Table)
		for _, c := range t.Cells {
			cell := c.Verdict
			if c.Verdict != VerdictDown && c.Verdict != VerdictMissing && strings.HasSuffix(t.Engine, "MergeTree") {
				cell = fmt.Sprintf("%s %d", c.Verdict, c.Rows)
			}
			fmt.Fprintf(w, "%-16s", cell)
		}
		fmt.Fprintln(w)
	}
	for _, m := range r.Migrations {
		state := "clean"
		if m.Dirty {
			state = "DIRTY"
		}
		fmt.Fprintf(w, "migrations %s: version %d, %s\n", m.Database, m.Version, state)
	}
	for _, h := range r.ZooKeeper {
		state := "ok"
		if !h.OK {
			state = "DOWN " + h.Error
		}
		fmt.Fprintf(w, "zookeeper %s: %s %s, %d znodes\n", h.Server, state, h.Mode, h.ZnodeCount)
	}
	if syncing := r.Syncing(); r.Healthy && len(syncing) > 0 {
		// Rows of a syncing cell are not compared yet, so "healthy" would claim what the check
		// has not seen; it is no problem either, as a queue drains on its own.
		fmt.Fprintf(w, "no problems yet: %d tables on %d replicas, rows not compared while syncing: %s; run 'tracevault check' again once the queues drain\n",
			len(r.Tables), len(r.Replicas), strings.Join(syncing, ", "))
		return
	}
	if r.Healthy {
		fmt.Fprintf(w, "healthy: %d tables on %d replicas\n", len(r.Tables), len(r.Replicas))
		return
	}
	fmt.Fprintf(w, "%d problem(s):\n", len(r.Problems))
	for _, p := range r.Problems {
		fmt.Fprintf(w, "- [%s] %s\n  fix: %s\n", p.Kind, p.Message, p.Fix)
	}
}

// Syncing names the cells whose replication queue was not empty ("db.table on replica"), whose
// rows the check therefore did not compare.
func (r *Report) Syncing() []string {
	var out []string
	for _, t := range r.Tables {
		for _, c := range t.Cells {
			if c.Verdict == VerdictSyncing {
				out = append(out, t.Table+" on "+c.Replica)
			}
		}
	}
	return out
}
