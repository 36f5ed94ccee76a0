// Spreading a backup over the replicas: each partition of a replicated table is exported from the
// least loaded replica that is fit to give it, so a cluster's export load is shared by its
// replicas rather than borne by one.

package clickhouse

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"
)

// exportPick is a replica a table is read from, with its measured delay, and, for a replicated
// table in logical mode with spreading on, its peers: the other healthy replicas, their delays
// measured with its, which may give some of its partitions where assignExports finds them fit.
type exportPick struct {
	measuredDelay
	peers []measuredDelay
}

// replicaFit is what the assignment knows of one replica of a table: when its delay was measured
// and what it held then, and its columns and listing, both read after that measurement.
type replicaFit struct {
	Addr    string
	Cut     time.Time   // every write acknowledged before it is on this replica (measuredDelay.cut)
	Columns []string    // nil: not read
	Listing []Partition // nil: not read
}

// exportLoad is what a backup has given a replica to export so far: the partitions' listed
// bytes (on disk) and their number. A partition whose object is reused costs the replica
// nothing, but whether it will be is only known as it is stored; it counts as listed.
type exportLoad struct {
	bytes   uint64
	exports int
}

// assignExports chooses, for each partition of a replicated table's listing, the replica it is
// exported from, as an index into replicas. replicas[0] is the primary: the replica whose
// delay is the table's cut and whose listing (parts) and columns are the table's; it may give
// every partition. Another replica may give a partition only where:
//   - its cut is not before the primary's, so the table's cut holds for what it exports (a
//     replica further behind would move the table's cut earlier);
//   - its columns are the primary's (an ALTER reaches replicas one by one);
//   - it lists the partition with the same parts, patch parts, contents and rows: the
//     partition's fingerprint, which names the object for later backups to reuse, and the rows
//     the export's end is checked against, are the primary's listing.
//
// Among the fit replicas each partition goes to the one least loaded so far (fewest bytes, then
// fewest exports, then first in replicas, which come least delayed first), the largest
// partitions placed first so that sizes even out. load carries what earlier tables of the
// backup gave each replica, by address, and is updated.
func assignExports(t Table, parts []Partition, columns []string, replicas []replicaFit, load map[string]*exportLoad) []int {
	listed := make([]map[string]Partition, len(replicas))
	for j, r := range replicas {
		if j == 0 || r.Cut.Before(replicas[0].Cut) || r.Columns == nil || !slices.Equal(r.Columns, columns) {
			continue
		}
		listed[j] = make(map[string]Partition, len(r.Listing))
		for _, p := range r.Listing {
			listed[j][p.ID] = p
		}
	}
	fit := func(j int, p Partition) bool {
		if j == 0 {
			return true
		}
		q, ok := listed[j][p.ID]
		return ok && sameListing(t, columns, p, q)
	}
	loadOf := func(j int) *exportLoad {
		l := load[replicas[j].Addr]
		if l == nil {
			l = &exportLoad{}
			load[replicas[j].Addr] = l
		}
		return l
	}
	order := make([]int, len(parts))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(parts[b].Bytes, parts[a].Bytes) })
	out := make([]int, len(parts))
	for _, i := range order {
		best := 0
		for j := 1; j < len(replicas); j++ {
			if !fit(j, parts[i]) {
				continue
			}
			if l, b := loadOf(j), loadOf(best); l.bytes < b.bytes || l.bytes == b.bytes && l.exports < b.exports {
				best = j
			}
		}
		out[i] = best
		l := loadOf(best)
		l.bytes += parts[i].Bytes
		l.exports++
	}
	return out
}

// sameListing says whether two replicas' listings of a replicated table's partition name the
// same object: the same fingerprint, and the same rows visible through its parts, which the
// export's end is checked against (see exportedAll).
func sameListing(t Table, columns []string, a, b Partition) bool {
	return a.ID == b.ID && a.visible == b.visible && Fingerprint(t, columns, a, "") == Fingerprint(t, columns, b, "")
}

// listPeers starts reading each peer's columns and listing of t, beside the pick's own listing
// (they are independent, and each is read after its replica's delay was measured, so what it
// lists reaches up to its cut); wait gives them once read. A peer whose listing fails is
// passed over, its partitions left to the others.
func (s *Source) listPeers(ctx context.Context, t Table, peers []measuredDelay) (wait func() []replicaFit) {
	out := make([]replicaFit, len(peers))
	var wg sync.WaitGroup
	for k, peer := range peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[k] = replicaFit{Addr: peer.srv.Addr, Cut: peer.cut()}
			cols, err := Columns(ctx, peer.srv, t.Database, t.Name)
			var listing []Partition
			if err == nil {
				listing, err = Partitions(ctx, peer.srv, t.Database, t.Name)
			}
			if err != nil {
				s.Log.Warn("a replica's listing could not be read; its share of the table's partitions is exported from the others",
					"table", t.FullName(), "replica", peer.srv.Addr, "err", err)
				return
			}
			out[k].Columns, out[k].Listing = cols, listing
		}()
	}
	return func() []replicaFit {
		wg.Wait()
		return out
	}
}

// partitionSources is, for each partition of parts (the pick's listing), the server it is
// exported from: the pick's, or a peer's where assignExports finds it fit and less loaded.
// peers are listPeers' of pick.peers, in that order.
func (s *Source) partitionSources(ctx context.Context, t Table, pick exportPick, peers []replicaFit, columns []string, parts []Partition) []*Server {
	out := make([]*Server, len(parts))
	for i := range out {
		out[i] = pick.srv
	}
	if len(peers) == 0 || len(parts) == 0 {
		return out
	}
	replicas := append([]replicaFit{{Addr: pick.srv.Addr, Cut: pick.cut()}}, peers...)
	servers := []*Server{pick.srv}
	for _, peer := range pick.peers {
		servers = append(servers, peer.srv)
	}
	counts := map[string]int{}
	for i, j := range assignExports(t, parts, columns, replicas, s.load) {
		out[i] = servers[j]
		counts[servers[j].Addr]++
	}
	s.Log.Debug("partitions spread over replicas", "table", t.FullName(), "partitions", counts)
	return out
}
