package clickhouse

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// FetchStall is how long a restore or a migration waits on a replica whose replication queue
// does not move before WaitFetched gives up.
const FetchStall = 10 * time.Minute

// fetchPoll is how often WaitFetched reads a replica's queue.
var fetchPoll = 500 * time.Millisecond

// WaitFetched waits until the replica srv has taken every entry of db.table's replication log
// into its queue and carried out each one that brings it data: fetches, attaches, partition
// replaces and drops. It does not wait for merges or mutations, which SYSTEM SYNC REPLICA does:
// a merge changes no row a replica holds, and a replica may postpone one for as long as it
// likes. A loaded 18.16 server postpones a large merge while its pool is busy, and cancels a
// table's merges while a REPLACE PARTITION of it runs, so a restore waiting on SYNC REPLICA
// after loading many partitions of a busy cluster could wait past any deadline (found by the
// chaos suite: ten minutes on one MERGE_PARTS entry). It gives up when the entries left and the
// replica's log pointer have not changed for stall, naming each entry and why it waits.
// progress, when not nil, is told every 5 s how many entries are left.
func WaitFetched(ctx context.Context, srv *Server, db, table string, stall time.Duration, progress func(left int)) error {
	name := db + "." + table
	var last string
	lastChange, lastTold := time.Now(), time.Now()
	for {
		key, left, n, err := unfetched(ctx, srv, db, table)
		if err != nil {
			return fmt.Errorf("wait for %s to fetch %s: %w", srv.Addr, name, err)
		}
		if key == "" {
			return nil
		}
		if progress != nil && time.Since(lastTold) >= 5*time.Second {
			progress(n)
			lastTold = time.Now()
		}
		if key != last {
			last, lastChange = key, time.Now()
		} else if time.Since(lastChange) >= stall {
			return fmt.Errorf("wait for %s to fetch %s: nothing moved for %s; %s; "+
				"look at that replica's system.replication_queue and its log, and at ZooKeeper", srv.Addr, name, stall, left)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s to fetch %s: %w; %s", srv.Addr, name, ctx.Err(), left)
		case <-time.After(fetchPoll):
		}
	}
}

// unfetched says what srv still has to do before it holds everything written to db.table's
// replicated log: key is "" when nothing is left and changes whenever the replica moves on (an
// entry done or a log entry taken, not an attempt failed again); left describes it, each
// entry's last error or reason to wait included; n counts the entries.
func unfetched(ctx context.Context, srv *Server, db, table string) (key, left string, n int, err error) {
	var pointer, max uint64
	if err := srv.Conn.QueryRow(ctx, "SELECT log_pointer, log_max_index FROM system.replicas WHERE database = ? AND table = ?", db, table).
		Scan(&pointer, &max); err != nil {
		return "", "", 0, fmt.Errorf("read system.replicas: %w", err)
	}
	rows, err := srv.Conn.Query(ctx, `SELECT type, new_part_name, num_tries, last_exception, postpone_reason
		FROM system.replication_queue
		WHERE database = ? AND table = ? AND type NOT IN ('MERGE_PARTS', 'MUTATE_PART')
		ORDER BY create_time, new_part_name`, db, table)
	if err != nil {
		return "", "", 0, fmt.Errorf("read system.replication_queue: %w", err)
	}
	defer rows.Close()
	var entries, parts []string
	for rows.Next() {
		var typ, part, exception, postponed string
		var tries uint32
		if err := rows.Scan(&typ, &part, &tries, &exception, &postponed); err != nil {
			return "", "", 0, fmt.Errorf("read system.replication_queue: %w", err)
		}
		e := fmt.Sprintf("%s %s (tries %d", typ, part, tries)
		if why := firstLine(exception); why != "" {
			e += ", last error: " + why
		} else if why := firstLine(postponed); why != "" {
			e += ", postponed: " + why
		}
		parts = append(parts, typ+" "+part)
		if len(entries) < maxListed {
			entries = append(entries, e+")")
		}
	}
	if err := rows.Err(); err != nil {
		return "", "", 0, fmt.Errorf("read system.replication_queue: %w", err)
	}
	// log_pointer is the index of the next log entry the replica will take; an empty log has
	// both at 0.
	pulled := pointer > max || (pointer == 0 && max == 0)
	if pulled && len(parts) == 0 {
		return "", "", 0, nil
	}
	var b strings.Builder
	if !pulled {
		fmt.Fprintf(&b, "log entries %d to %d not yet taken into its queue", pointer, max)
	}
	if len(parts) > 0 {
		if b.Len() > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%d queue entries left: %s", len(parts), strings.Join(entries, "; "))
		if len(parts) > len(entries) {
			fmt.Fprintf(&b, "; and %d more", len(parts)-len(entries))
		}
	}
	return fmt.Sprintf("%d %s", pointer, strings.Join(parts, ",")), b.String(), len(parts), nil
}

// maxListed bounds the queue entries an error names: a stuck replica may have thousands.
const maxListed = 5

// firstLine is s's first line, trimmed: a server's exception carries its stack trace after it.
func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return strings.TrimSpace(s)
}
