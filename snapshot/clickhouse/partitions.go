package clickhouse

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Partition is one unit of a ClickHouse backup: the active parts of one partition of a table,
// and the patch parts that update their rows.
type Partition struct {
	ID        string   `json:"id"`        // partition_id, as _partition_id and ATTACH PARTITION ID use it
	Partition string   `json:"partition"` // the partition key's value, e.g. 202605
	Parts     []string `json:"parts"`     // active part names, sorted
	Rows      uint64   `json:"rows"`      // listed: as system.parts counts them, lightweight-deleted rows too; recorded: what the object holds
	Bytes     uint64   `json:"bytes"`     // on disk, compressed, patch parts included
	// Patches are the active patch parts of the partition, sorted: lightweight updates and
	// deletes not yet merged into its parts, which a SELECT of its parts applies. Their rows
	// are changes to the partition's rows, not rows of their own, so Rows leaves them out.
	Patches []string `json:"patches,omitempty"`

	// content tells the parts' contents apart where names and rows repeat (a table dropped
	// and re-created, then loaded alike): each part's checksum hash where the server has one,
	// else its compressed, uncompressed and marks sizes. Both are equal on every replica.
	content []string
	// written is when the newest part was written (unix seconds): per replica, so only a local
	// table's fingerprint, which is per replica anyway, includes it.
	written int64
	// visible is the rows SELECT returns from the listed parts: Rows less those a lightweight
	// delete masked. It is what a logical object of these parts holds.
	visible uint64
	// unsettled is set (to a value no other listing has) when the partition's parts or patch
	// parts changed while visible was counted: the count may then hold a later patch's deletes
	// (a SELECT applies every active patch part, not only the listed ones), so it describes no
	// listing, and the fingerprint must match no earlier or later object (see countVisible).
	unsettled string
}

// Partitions lists the active partitions of a table from system.parts, each with its patch parts.
func Partitions(ctx context.Context, s *Server, db, table string) ([]Partition, error) {
	content := "concat(toString(data_compressed_bytes), '/', toString(data_uncompressed_bytes), '/', toString(marks_bytes))"
	if s.Caps.PartHashes {
		content = "hash_of_all_files"
	}
	masked := "0"
	if s.Caps.LightweightDeletes {
		masked = "max(has_lightweight_delete)"
	}
	rows, err := s.Conn.Query(ctx, `SELECT partition_id, partition, groupArray(name), sum(rows), sum(bytes_on_disk),
		groupArray(concat(name, ' ', `+content+`)), toInt64(max(modification_time)), toUInt8(`+masked+`)
		FROM system.parts WHERE database = ? AND table = ? AND active
		GROUP BY partition_id, partition ORDER BY partition_id`, db, table)
	if err != nil {
		return nil, fmt.Errorf("list partitions of %s.%s on %s: %w", db, table, s.Addr, err)
	}
	defer rows.Close()
	var listed []listedPartition
	for rows.Next() {
		var l listedPartition
		var hasDeletes uint8
		if err := rows.Scan(&l.ID, &l.Partition.Partition, &l.Parts, &l.Rows, &l.Bytes, &l.content, &l.written, &hasDeletes); err != nil {
			return nil, fmt.Errorf("list partitions of %s.%s on %s: %w", db, table, s.Addr, err)
		}
		l.deletes = hasDeletes != 0
		listed = append(listed, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list partitions of %s.%s on %s: %w", db, table, s.Addr, err)
	}
	rows.Close()
	out, recount := groupPatches(listed, s.Caps.PatchParts)
	for _, i := range recount {
		if err := countVisible(ctx, s, db, table, &out[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// listedPartition is one row of the listing: a partition_id's active parts, which are patch
// parts where the id is a patch partition's.
type listedPartition struct {
	Partition
	deletes bool // some part has lightweight-deleted rows
}

// groupPatches folds the listing's patch partitions into the partitions they update, so that a
// partition is its parts and its patch parts, and no patch-… partition is ever backed up on its
// own: its object would be empty, and restoring it refused. Patch parts of a partition without
// parts left update no row and are left out. patchParts is Capabilities.PatchParts: only such a
// server has patch partitions. It returns the partitions sorted by id, and the indexes of those
// whose visible rows must be counted: where a lightweight delete masked rows, or a patch part
// may have (a lightweight_update-mode DELETE is one).
func groupPatches(listed []listedPartition, patchParts bool) ([]Partition, []int) {
	var out []Partition
	var patches []listedPartition
	recount := map[string]bool{}
	for _, l := range listed {
		if _, ok := PatchPartitionOf(l.ID); ok && patchParts {
			patches = append(patches, l)
			continue
		}
		p := l.Partition
		p.visible = p.Rows
		recount[p.ID] = l.deletes
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	for _, l := range patches {
		id, _ := PatchPartitionOf(l.ID)
		i := sort.Search(len(out), func(i int) bool { return out[i].ID >= id })
		if i == len(out) || out[i].ID != id {
			continue
		}
		p := &out[i]
		p.Patches = append(p.Patches, l.Parts...)
		p.content = append(p.content, l.content...)
		p.Bytes += l.Bytes
		p.written = max(p.written, l.written)
		recount[id] = true
	}
	var counts []int
	for i := range out {
		sort.Strings(out[i].Parts)
		sort.Strings(out[i].Patches)
		sort.Strings(out[i].content)
		if recount[out[i].ID] {
			counts = append(counts, i)
		}
	}
	return out, counts
}

// PatchPartitionOf says whether a partition_id is one under which system.parts lists patch parts,
// patch-<hash>-<id>, and returns <id>: the partition whose rows they update. The hash (of the
// updated columns' names) is hex; the id may hold dashes itself (a tuple key's, 202605-3).
func PatchPartitionOf(id string) (string, bool) {
	rest, ok := strings.CutPrefix(id, "patch-")
	if !ok {
		return "", false
	}
	hash, of, ok := strings.Cut(rest, "-")
	if !ok || hash == "" || of == "" {
		return "", false
	}
	for _, c := range hash {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return "", false
		}
	}
	return of, true
}

// InPartition is the condition that selects a partition's rows, reading only its parts: servers
// before 19.x read every part for a condition on _partition_id and filter afterwards, so a table
// of N partitions was read N times; they do skip parts by a condition on _part. A part's name
// starts with its partition id and '_', which an id never contains, so both select the same
// rows; except in a table of the old syntax (MergeTree(date, key, granularity)), whose parts are
// named by dates (20240105_20240131_1_1_0 in partition 202401): there the _part condition would
// select nothing, so it is added only when every listed part's name has the id's prefix.
func InPartition(p Partition) string {
	cond := "_partition_id = " + QuoteString(p.ID)
	prefix := p.ID + "_"
	for _, part := range p.Parts {
		if !strings.HasPrefix(part, prefix) {
			return cond
		}
	}
	if len(p.Parts) == 0 {
		return cond
	}
	return cond + " AND startsWith(_part, " + QuoteString(prefix) + ")"
}

// partitionParts lists the active parts of one partition now, and its active patch parts (on a
// server with PatchParts), each sorted: what a listing of the partition would hold.
func partitionParts(ctx context.Context, s *Server, db, table, id string) (parts, patches []string, err error) {
	cond := "partition_id = ?"
	if s.Caps.PatchParts {
		cond = "(partition_id = ? OR startsWith(partition_id, 'patch-'))"
	}
	rows, err := s.Conn.Query(ctx, "SELECT partition_id, name FROM system.parts WHERE active AND database = ? AND table = ? AND "+cond, db, table, id)
	if err != nil {
		return nil, nil, fmt.Errorf("list the parts of %s.%s partition %s on %s: %w", db, table, id, s.Addr, err)
	}
	defer rows.Close()
	for rows.Next() {
		var partition, name string
		if err := rows.Scan(&partition, &name); err != nil {
			return nil, nil, fmt.Errorf("list the parts of %s.%s partition %s on %s: %w", db, table, id, s.Addr, err)
		}
		if partition == id {
			parts = append(parts, name)
		} else if of, ok := PatchPartitionOf(partition); ok && of == id {
			patches = append(patches, name)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("list the parts of %s.%s partition %s on %s: %w", db, table, id, s.Addr, err)
	}
	sort.Strings(parts)
	sort.Strings(patches)
	return parts, patches, nil
}

// countVisible counts the rows of a partition's listed parts that lightweight deletes left,
// reading their _row_exists masks with the patch parts applied. A SELECT applies every active
// patch part, listed or not, and a part merged away since the listing reads as empty: so the
// parts and patch parts are listed again after the count, and where they changed the partition
// is marked unsettled. Its fingerprint then matches no object, and the export stores what it
// reads. Before this check, a lightweight delete made between the listing and the count gave a
// reused object (stored when that delete did not exist yet) a row count it did not hold, and the
// snapshot, listed complete, could not be restored (the modern chaos run, 2026-12-06).
func countVisible(ctx context.Context, s *Server, db, table string, p *Partition) error {
	names := make([]string, len(p.Parts))
	for i, name := range p.Parts {
		names[i] = QuoteString(name)
	}
	sql := fmt.Sprintf("SELECT count() FROM %s.%s WHERE _partition_id = %s AND _part IN (%s)", QuoteIdent(db), QuoteIdent(table), QuoteString(p.ID), strings.Join(names, ", "))
	if err := s.Conn.QueryRow(ctx, sql).Scan(&p.visible); err != nil {
		return fmt.Errorf("count the rows left by lightweight deletes in %s.%s partition %s on %s: %w", db, table, p.ID, s.Addr, err)
	}
	parts, patches, err := partitionParts(ctx, s, db, table, p.ID)
	if err != nil {
		return err
	}
	if !slices.Equal(parts, p.Parts) || !slices.Equal(patches, p.Patches) {
		p.unsettled = rand.Text()
	}
	return nil
}

// Columns returns a table's "name type" list in table order (the order system.columns lists
// them in; 18.16 has no position column to sort by).
func Columns(ctx context.Context, s *Server, db, table string) ([]string, error) {
	cols, err := columnList(ctx, s, db, table)
	return columnStrings(cols), err
}

type column struct{ name, typ string }

func columnStrings(cols []column) []string {
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = c.name + " " + c.typ
	}
	return out
}

func columnList(ctx context.Context, s *Server, db, table string) ([]column, error) {
	rows, err := s.Conn.Query(ctx, "SELECT name, type FROM system.columns WHERE database = ? AND table = ?", db, table)
	if err != nil {
		return nil, fmt.Errorf("read columns of %s.%s on %s: %w", db, table, s.Addr, err)
	}
	defer rows.Close()
	var out []column
	for rows.Next() {
		var c column
		if err := rows.Scan(&c.name, &c.typ); err != nil {
			return nil, fmt.Errorf("read columns of %s.%s on %s: %w", db, table, s.Addr, err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// Fingerprint names a partition's content for incremental backups: if an earlier snapshot holds
// an object with the same fingerprint, that object is reused. Replicated part names are the same
// on every replica, so the source replica is left out and a backup may switch replicas and stay
// incremental; a local table's parts are that server's own, so its address is part of it. The
// columns are included because ALTER ADD COLUMN changes what SELECT * returns without renaming
// any part. Part names and rows repeat in a table dropped and re-created, so the table's
// identity (its UUID, the incarnation of its replication group, its create statement) and the
// parts' contents (see Partition.content) are included too. So are the patch parts, which
// change the rows a SELECT reads without renaming any part: a patch part appearing, merging
// with another or merged away changes the fingerprint. So do the rows a SELECT of the listing
// returns, where lightweight deletes left fewer than the parts hold: a reused object is trusted
// to hold them, and a count a dying server answered wrongly must not name a good listing. A
// partition without patch parts or deleted rows has the fingerprint it had before either was
// counted, so its objects are still reused.
func Fingerprint(t Table, columns []string, p Partition, replicaAddr string) string {
	h := sha256.New()
	fmt.Fprintf(h, "clickhouse-partition/v2\n%s\n%s\n", t.FullName(), p.ID)
	if !t.Replicated() {
		fmt.Fprintf(h, "replica %s\nwritten %d\n", replicaAddr, p.written)
	}
	fmt.Fprintf(h, "uuid %s\nincarnation %s\ncreate %x\n", t.UUID, t.incarnation, sha256.Sum256([]byte(t.Create)))
	fmt.Fprintf(h, "columns %s\nparts %s\nrows %d\ncontent %s\n", strings.Join(columns, ", "), strings.Join(p.Parts, " "), p.Rows, strings.Join(p.content, " "))
	if len(p.Patches) > 0 {
		fmt.Fprintf(h, "patches %s\n", strings.Join(p.Patches, " "))
	}
	if p.visible != p.Rows {
		fmt.Fprintf(h, "visible %d\n", p.visible)
	}
	if p.unsettled != "" {
		fmt.Fprintf(h, "unsettled %s\n", p.unsettled)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// PartitionRows is a table's active row count per partition ID on one server.
func PartitionRows(ctx context.Context, s *Server, db, table string) (map[string]uint64, error) {
	parts, err := Partitions(ctx, s, db, table)
	if err != nil {
		return nil, err
	}
	out := map[string]uint64{}
	for _, p := range parts {
		out[p.ID] = p.Rows
	}
	return out, nil
}
