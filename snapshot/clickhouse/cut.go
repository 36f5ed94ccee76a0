// The cut of a ClickHouse backup: the moment before which every acknowledged write is in it.

package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tracevault/tracevault/snapshot/clickhouse/native"
)

// TakesCut: the first table's listing is the source's cut, taken with the set's others.
func (s *Source) TakesCut() {}

// versionColumn is the version column of a (Replicated)ReplacingMergeTree in its CREATE
// statement: the first argument after the replicated engine's path and replica literals, when
// it is a column name. Other engines, and one without a version, have none: "".
func versionColumn(create string) string {
	_, after, ok := strings.Cut(create, "ReplacingMergeTree(")
	if !ok {
		return ""
	}
	depth := 0
	for i := 0; i < len(after); i++ {
		switch c := after[i]; c {
		case '\'', '"', '`':
			if i = closingQuote(after, i); i < 0 {
				return ""
			}
		case '(':
			depth++
		case ')':
			if depth--; depth >= 0 {
				continue
			}
			args, err := native.SplitArgs(after[:i])
			if err != nil {
				return ""
			}
			for _, a := range args {
				if strings.HasPrefix(a, "'") {
					continue // the ZooKeeper path and replica name
				}
				if name := strings.Trim(a, "`\""); isIdent(name) {
					return name
				}
				return ""
			}
			return ""
		}
	}
	return ""
}

func isIdent(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isWordByte(s[i], i == 0) {
			return false
		}
	}
	return s != ""
}

// tableCut is the moment before which every write acknowledged on any replica is in what a
// table's export lists from srv, for a listing that begins after this call: the moment the
// delay was read, less the replica's replication delay for a replicated table, as the server
// measures it then. The replica only gains writes afterwards, so a later listing holds at least
// that much.
func tableCut(ctx context.Context, t Table, srv *Server) (measuredDelay, error) {
	at := time.Now()
	if !t.Replicated() {
		return measuredDelay{srv: srv, at: at}, nil
	}
	seconds, err := replicaDelay(ctx, srv, t)
	return measuredDelay{srv: srv, at: at, seconds: seconds, replicated: true}, err
}

// measuredDelay is a replica's replication delay and when it was read (just before the query).
type measuredDelay struct {
	srv        *Server
	at         time.Time
	seconds    uint64
	replicated bool
}

// cut is the moment before which the replica holds every write. The server counts its delay in
// whole seconds, from the oldest write it has not fetched, whose time it keeps truncated to the
// second, to its clock's current second: that write may be as old as the delay before the
// current second began, not before the moment the delay was read (found by the chaos suite: a
// row acknowledged 0.22 s before such a cut, by a replica killed before the others fetched it,
// was not in the snapshot). A delay of 0 allows a write not yet fetched from within the same
// second. Clocks are assumed in step between the servers and tracevault.
func (d measuredDelay) cut() time.Time {
	if !d.replicated {
		return d.at
	}
	return d.at.Truncate(time.Second).Add(-time.Duration(d.seconds) * time.Second)
}

// replicaDelay is how far, in whole seconds, srv's replica of t is behind its group.
func replicaDelay(ctx context.Context, srv *Server, t Table) (uint64, error) {
	var delay uint64
	err := srv.Conn.QueryRow(ctx, "SELECT absolute_delay FROM system.replicas WHERE database = ? AND table = ?", t.Database, t.Name).Scan(&delay)
	if err != nil {
		return 0, fmt.Errorf("read the replication delay of %s on %s: %w", t.FullName(), srv.Addr, err)
	}
	return delay, nil
}

// leastDelayed picks, of a replicated table's healthy replicas, the one least behind now: the
// table's cut is its listing less that replica's delay, so the replica that has the most of the
// group's writes gives the latest cut. Ties keep the given order (least delay and queue when
// the backup began); a replica that does not answer is passed over. The chosen replica's delay
// is the table's cut when its listing follows (see tableCut). peers are the other replicas that
// answered, in the given order, with their own measurements: assignExports keeps those whose
// cut is not before the chosen one's.
func leastDelayed(ctx context.Context, srcs []*Server, t Table) (best measuredDelay, peers []measuredDelay, err error) {
	var measured []measuredDelay
	var errs []error
	for _, srv := range srcs {
		d, err := tableCut(ctx, t, srv)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		measured = append(measured, d)
		if best.srv == nil || d.seconds < best.seconds {
			best = d
		}
	}
	if best.srv == nil {
		return best, nil, errors.Join(errs...)
	}
	for _, d := range measured {
		if d.srv != best.srv {
			peers = append(peers, d)
		}
	}
	return best, peers, nil
}

// sourceCut gathers the tables' cuts into the source's: the earliest, or the moment the set
// released the source when it exported no table. Its position is the newest version any
// partition's export held, evidence that the data reaches up to the cut.
type sourceCut struct {
	released, earliest time.Time
	newest             time.Time
	column             string
}

func newSourceCut(released time.Time) *sourceCut { return &sourceCut{released: released} }

func (c *sourceCut) add(rec TableRecord) {
	if !rec.Cut.IsZero() && (c.earliest.IsZero() || rec.Cut.Before(c.earliest)) {
		c.earliest = rec.Cut
	}
	for _, p := range rec.Partitions {
		if p.newestTime.After(c.newest) {
			c.newest, c.column = p.newestTime, rec.VersionColumn
		}
	}
}

func (c *sourceCut) time() time.Time {
	if c.earliest.IsZero() {
		return c.released
	}
	return c.earliest
}

func (c *sourceCut) position() string {
	if c.newest.IsZero() {
		return ""
	}
	return "newest " + c.column + " exported " + c.newest.UTC().Format(time.RFC3339Nano)
}
