package replica

import (
	"fmt"
	"strings"

	"github.com/tracevault/tracevault/snapshot/clickhouse"
)

// referenceGroup is the path (and UUID) most of a table's replicas are in; ties go to the one
// with more replicas registered in ZooKeeper, then to the first replica's.
func referenceGroup(live map[int]clickhouse.ReplicaTable, view *clickhouse.View) (string, string) {
	type key struct{ path, uuid string }
	count := map[key]int{}
	first := map[key]int{}
	for i, t := range live {
		k := key{t.ZooKeeperPath, t.UUID}
		count[k]++
		if f, ok := first[k]; !ok || i < f {
			first[k] = i
		}
	}
	registered := func(path string) int {
		for _, g := range view.Groups {
			if g.ZooKeeperPath == path {
				return len(g.Registered)
			}
		}
		return 0
	}
	var best key
	bestSet := false
	for k := range count {
		better := !bestSet || count[k] > count[best] ||
			(count[k] == count[best] && (registered(k.path) > registered(best.path) ||
				(registered(k.path) == registered(best.path) && first[k] < first[best])))
		if better {
			best, bestSet = k, true
		}
	}
	return best.path, best.uuid
}

// majority is the column list most replicas that have the table agree on.
func majority(facts []replicaFacts, name string) []string {
	votes := map[string]int{}
	lists := map[string][]string{}
	for _, f := range facts {
		if f == nil || f[name] == nil {
			continue
		}
		k := strings.Join(f[name].Columns, ", ")
		votes[k]++
		lists[k] = f[name].Columns
	}
	best := ""
	for _, k := range sortedKeys(votes) {
		if votes[k] > votes[best] {
			best = k
		}
	}
	return lists[best]
}

func columnDiff(want, got []string) string {
	in := func(xs []string, s string) bool {
		for _, x := range xs {
			if x == s {
				return true
			}
		}
		return false
	}
	var d []string
	for _, c := range want {
		if !in(got, c) {
			d = append(d, "lacks "+c)
		}
	}
	for _, c := range got {
		if !in(want, c) {
			d = append(d, "has "+c)
		}
	}
	return strings.Join(d, "; ")
}

func partitionDiff(want, got map[string]uint64) string {
	ids := map[string]bool{}
	for id := range want {
		ids[id] = true
	}
	for id := range got {
		ids[id] = true
	}
	var d []string
	for _, id := range sortedKeys(ids) {
		if want[id] != got[id] {
			d = append(d, fmt.Sprintf("partition %s: %d rows, peers %d", id, got[id], want[id]))
		}
	}
	return strings.Join(d, "; ")
}

func sum(m map[string]uint64) uint64 {
	var n uint64
	for _, v := range m {
		n += v
	}
	return n
}
