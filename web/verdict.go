package web

import "github.com/tracevault/tracevault/snapshot/clickhouse/replica"

// worstVerdict is a table's verdict across its replicas, shown first in its row so a phone,
// where the replica columns scroll off, still says whether the table is well: the first bad
// verdict, else the first that is settling (syncing, lagging), else ok.
func worstVerdict(cells []replica.Cell) string {
	rank := map[string]int{"ok": 0, "warn": 1, "bad": 2}
	worst, worstRank := "", -1
	for _, c := range cells {
		if c.Verdict == "" {
			continue
		}
		if r := rank[verdictClass(c.Verdict)]; r > worstRank {
			worst, worstRank = c.Verdict, r
		}
	}
	return worst
}

// verdictClass is the colour class of a replica verdict.
func verdictClass(v string) string {
	switch v {
	case replica.VerdictOK:
		return "ok"
	case replica.VerdictSyncing, replica.VerdictLagging:
		return "warn"
	}
	return "bad"
}
