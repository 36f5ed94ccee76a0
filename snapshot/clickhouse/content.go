// Content checksums of partitions: recorded at backup, compared by a restore drill, so that a
// drill proves the rows themselves came back, not only how many.

package clickhouse

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/tracevault/tracevault/snapshot/store"
)

// ContentSum is a partition's rows as a deterministic query sums them: the row count and the
// wrapping sum of cityHash64 over each row's TSV text (formatRow). A plain cityHash64(*) is NULL
// for a row with a NULL in a Nullable column, which sum() would skip. The sum is the same on
// any server holding the same rows, whatever their order, parts or replica.
type ContentSum struct {
	Rows uint64 `json:"rows"`
	Sum  uint64 `json:"sum"`
}

// PartitionContent sums one partition of db.table on srv, which must have formatRow
// (Capabilities.FormatRow); parts, when given, restricts the sum to those parts.
func PartitionContent(ctx context.Context, srv *Server, db, table, partitionID string, parts []string) (ContentSum, error) {
	q := fmt.Sprintf("SELECT count(), sum(cityHash64(formatRow('TSV', *))) FROM %s.%s WHERE _partition_id = ?", QuoteIdent(db), QuoteIdent(table))
	args := []any{partitionID}
	var c ContentSum
	if parts != nil {
		if len(parts) == 0 {
			return c, nil
		}
		q += " AND has(?, _part)"
		args = append(args, parts)
	}
	if err := srv.Conn.QueryRow(ctx, q, args...).Scan(&c.Rows, &c.Sum); err != nil {
		return c, fmt.Errorf("sum the content of %s.%s partition %s on %s: %w", db, table, partitionID, srv.Addr, err)
	}
	return c, nil
}

// contentSums computes the content checksums a backup records, where the server has formatRow.
type contentSums struct {
	repo *store.Repository
	// mu guards earlier: partitions are exported in parallel.
	mu sync.Mutex
	// earlier are the sums the newest complete snapshot recorded, by object id: a reused
	// object's sum is carried over rather than read again. Loaded on the first reuse.
	earlier map[string]*ContentSum
}

// of returns the checksum of a partition's object, or nil (with the reason logged by the
// caller) when none can be recorded: the server lacks formatRow, the query failed, or the
// partition's parts changed while it was summed, so the sum might not be of the object's rows.
func (c *contentSums) of(ctx context.Context, srv *Server, rec *TableRecord, p Partition, obj store.ManifestObject, logical bool) (*ContentSum, string) {
	if !srv.Caps.FormatRow {
		return nil, ""
	}
	if obj.Reused {
		if sum := c.carried(ctx, obj.ID); sum != nil {
			return sum, ""
		}
	}
	sum, err := PartitionContent(ctx, srv, rec.Database, rec.Name, p.ID, p.Parts)
	if err != nil {
		return nil, err.Error()
	}
	// Parts never become active again once merged away: the same active set after the sum as
	// the object's parts means the sum read exactly the object's parts. Likewise for the patch
	// parts, which the sum applied: a lightweight update since the listing changes them.
	active, patches, err := partitionParts(ctx, srv, rec.Database, rec.Name, p.ID)
	if err != nil {
		return nil, err.Error()
	}
	if !slices.Equal(active, p.Parts) || !slices.Equal(patches, p.Patches) || (logical && !obj.Reused && sum.Rows != p.Rows) {
		return nil, "the partition changed while it was backed up"
	}
	return &sum, ""
}

func (c *contentSums) carried(ctx context.Context, id string) *ContentSum {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.earlier == nil {
		c.earlier = map[string]*ContentSum{}
		// The newest snapshot holding ClickHouse whole, whatever else it holds: "latest" is
		// the newest full set of the configured sources, which a backup narrowed to
		// ClickHouse (--only clickhouse) never writes, and every reused partition would
		// then be read again to sum it.
		if m, err := c.repo.Snapshot(ctx, "latest:clickhouse"); err == nil {
			if sec, _, err := SnapshotSection(m); err == nil {
				for _, t := range sec.Tables {
					for _, p := range t.Partitions {
						if p.Content != nil {
							c.earlier[p.Object] = p.Content
						}
					}
				}
			}
		}
	}
	return c.earlier[id]
}
