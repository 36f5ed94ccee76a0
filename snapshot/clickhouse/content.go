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
// wrapping sum of a hash of each row (its Kind). The sum is the same on any server holding the
// same rows, whatever their order, parts or replica; sums of different kinds never compare.
type ContentSum struct {
	Rows uint64 `json:"rows"`
	Sum  uint64 `json:"sum"`
	Kind string `json:"kind,omitempty"`
}

// The kinds of content checksum: how a row is hashed.
const (
	// ContentTSV hashes the row's TSV text, cityHash64(formatRow('TSV', *)) (20.x+): what
	// snapshots recorded before ContentTuple, and what a server without it records still. A
	// plain cityHash64(*) is NULL for a row with a NULL in a Nullable column, which sum() skips.
	ContentTSV = ""
	// ContentTuple hashes the row's values, cityHash64(tuple(*)), which hashes a NULL inside a
	// tuple as a value (25.5+; older servers refuse one). It takes about 0.4× formatRow's server
	// CPU, and an export appends it to its SELECT (RowHashColumn), so that the checksum comes
	// from the read that exports the rows.
	ContentTuple = "tuple"
)

// RowHashColumn is the column an export appends for a ContentTuple sum; the Native reader
// takes it out of the stream (native.RowHash), so that objects hold the table's columns only.
const RowHashColumn = "__tracevault_row_hash"

// rowHash is the SQL of a kind's hash of one row.
func rowHash(kind string) string {
	if kind == ContentTuple {
		return "cityHash64(tuple(*))"
	}
	return "cityHash64(formatRow('TSV', *))"
}

// ContentKind is the kind of content checksum srv records: the cheapest it computes. ok is
// false where it computes none (18.16, which has no formatRow).
func (c Capabilities) ContentKind() (kind string, ok bool) {
	switch {
	case c.TupleHash:
		return ContentTuple, true
	case c.FormatRow:
		return ContentTSV, true
	}
	return "", false
}

// Sums says whether the server computes content checksums of the kind.
func (c Capabilities) Sums(kind string) bool {
	if kind == ContentTuple {
		return c.TupleHash
	}
	return kind == ContentTSV && c.FormatRow
}

// CommonContentKind is the content checksum kind both servers compute, ok false if none: what a
// cluster migration compares a partition's two sides with.
func CommonContentKind(a, b Capabilities) (kind string, ok bool) {
	for _, k := range []string{ContentTuple, ContentTSV} {
		if a.Sums(k) && b.Sums(k) {
			return k, true
		}
	}
	return "", false
}

// PartitionContent sums one partition of db.table on srv with a kind of checksum it computes
// (Capabilities.Sums); parts, when given, restricts the sum to those parts.
func PartitionContent(ctx context.Context, srv *Server, db, table, partitionID string, parts []string, kind string) (ContentSum, error) {
	q := fmt.Sprintf("SELECT count(), sum(%s) FROM %s.%s WHERE _partition_id = ?", rowHash(kind), QuoteIdent(db), QuoteIdent(table))
	args := []any{partitionID}
	c := ContentSum{Kind: kind}
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
// caller) when none can be recorded: the server computes none, the query failed, or the
// partition's parts changed while it was summed, so the sum might not be of the object's rows.
// An export that summed its own rows (exported) needs no query.
func (c *contentSums) of(ctx context.Context, srv *Server, rec *TableRecord, p Partition, obj store.ManifestObject, logical bool, exported *ContentSum) (*ContentSum, string) {
	kind, ok := srv.Caps.ContentKind()
	if !ok {
		return nil, ""
	}
	if obj.Reused {
		if sum := c.carried(ctx, obj.ID); sum != nil {
			return sum, ""
		}
	} else if exported != nil {
		return exported, ""
	}
	sum, err := PartitionContent(ctx, srv, rec.Database, rec.Name, p.ID, p.Parts, kind)
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
