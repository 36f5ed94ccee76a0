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
	if r.Healthy {
		fmt.Fprintf(w, "healthy: %d tables on %d replicas\n", len(r.Tables), len(r.Replicas))
		return
	}
	fmt.Fprintf(w, "%d problem(s):\n", len(r.Problems))
	for _, p := range r.Problems {
		fmt.Fprintf(w, "- [%s] %s\n  fix: %s\n", p.Kind, p.Message, p.Fix)
	}
}
