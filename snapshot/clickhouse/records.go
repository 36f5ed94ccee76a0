// The snapshot records: what a manifest's clickhouse section holds. Backing up writes them,
// restoring and replica rebuilds read them.

package clickhouse

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/tracevault/tracevault/snapshot/store"
)

// Section is the clickhouse part of a manifest: enough to rebuild every table, with the same
// ZooKeeper paths and UUIDs, and to load every partition.
type Section struct {
	Cluster      string        `json:"cluster,omitempty"`
	Capabilities Capabilities  `json:"capabilities"`
	Tables       []TableRecord `json:"tables"`
	// Databases are the backed-up tables' databases where the server gives them a UUID
	// (Atomic): a restore in place creates each with its own UUID again.
	Databases []DatabaseRecord `json:"databases,omitempty"`
	View      *View            `json:"view"`
	Replicas  []ReplicaIndex   `json:"replicas"`
}

// ReplicaIndex ties a configured address to its HTTP address and macros.
type ReplicaIndex struct {
	Native string            `json:"native"`
	HTTP   string            `json:"http"`
	Macros map[string]string `json:"macros,omitempty"`
}

// DatabaseRecord is one database's identity on a server that has database UUIDs.
type DatabaseRecord struct {
	Name   string `json:"name"`
	Engine string `json:"engine"`
	UUID   string `json:"uuid"`
}

// TableRecord is one table in a snapshot.
type TableRecord struct {
	Table
	Columns    []string          `json:"columns,omitempty"`
	Partitions []PartitionRecord `json:"partitions,omitempty"`
	// Cut is the table's cut: every write acknowledged before it is in its partitions. It is
	// when its partitions were listed, less the source replica's replication delay.
	Cut time.Time `json:"cut,omitzero"`
	// CutReplicaDelay is by how many seconds Cut precedes the listing: the source replica's
	// replication delay then, as the server measured it.
	CutReplicaDelay uint64 `json:"cut_replica_delay_s,omitempty"`
	// VersionColumn is the ReplacingMergeTree version whose newest value each partition's
	// export held (PartitionRecord.Newest); empty for other engines.
	VersionColumn string `json:"version_column,omitempty"`
	// RowsNotKept says why the snapshot holds the table's definition but none of its rows
	// (see Table.KeepsRowsOutsideParts); a restore creates it empty and says so.
	RowsNotKept string `json:"rows_not_kept,omitempty"`
}

// PartitionRecord is one partition as stored: which replica it was read from and its object.
type PartitionRecord struct {
	Partition
	Replica string `json:"replica"` // native address it was exported from
	Object  string `json:"object"`
	SHA256  string `json:"sha256"`
	// Format is how the object was made: FormatNative, or FormatPartsTar in freeze mode.
	// Snapshots from before freeze mode leave it empty, meaning native.
	Format string `json:"format,omitempty"`
	// Checked is where Rows come from for a logical export: CheckedStream or CheckedQueryLog.
	// Empty for a reused object (its rows are the listing it was stored under), freeze mode
	// (the frozen parts' own counts) and older snapshots.
	Checked string `json:"checked,omitempty"`
	// Content is the checksum of the object's rows, which a drill compares after restoring it.
	// Absent where the server has no formatRow (18.16), for a partition that changed while it
	// was backed up, and in older snapshots.
	Content *ContentSum `json:"content,omitempty"`
	// Exported is when the export of the partition began: it holds every write acknowledged
	// on its replica before then.
	Exported time.Time `json:"exported,omitzero"`
	// Newest is the newest value of the table's VersionColumn that a logical export held,
	// counted in its stream; empty for a reused object and freeze mode.
	Newest string `json:"newest,omitempty"`
	// newestTime is Newest as a time, when the version is one.
	newestTime time.Time
}

// How the rows of an exported Native object were counted and its end confirmed.
const (
	// CheckedStream: tracevault walked every block of the stream (package native).
	CheckedStream = "native-stream"
	// CheckedQueryLog: a column type the scanner cannot walk; the server's system.query_log
	// record of the export query gave its result rows and said it finished.
	CheckedQueryLog = "query-log"
)

// SnapshotSection reads a manifest's clickhouse section and indexes its objects by id.
func SnapshotSection(m *store.Manifest) (*Section, map[string]store.ObjectRef, error) {
	raw, ok := m.Sections["clickhouse"]
	if !ok {
		return nil, nil, fmt.Errorf("snapshot %s has no clickhouse section", m.ID)
	}
	var sec Section
	if err := json.Unmarshal(raw, &sec); err != nil {
		return nil, nil, fmt.Errorf("read clickhouse section of %s: %w", m.ID, err)
	}
	if err := sec.CheckStatements(); err != nil {
		return nil, nil, fmt.Errorf("snapshot %s: %w", m.ID, err)
	}
	sec.dropPatchPartitions()
	objects := map[string]store.ObjectRef{}
	for _, o := range m.Objects {
		objects[o.ID] = o.ObjectRef
	}
	return &sec, objects, nil
}

// dropPatchPartitions forgets the patch-<hash>-<id> partitions that snapshots taken before
// patch parts were counted with their partition recorded on their own. Their objects hold no
// rows (an export of such an id reads none: a SELECT applies patch parts to the partition they
// update, whose own object holds the updated rows), and restoring one fails (REPLACE PARTITION
// refuses an empty source), so a restore, a drill or a replica rebuild of such a snapshot leaves
// them out. No partition of a table has such an id: the server names partitions by digits,
// dashes and hex hashes, and only patch parts by "patch-".
func (sec *Section) dropPatchPartitions() {
	for i := range sec.Tables {
		t := &sec.Tables[i]
		t.Partitions = slices.DeleteFunc(t.Partitions, func(p PartitionRecord) bool {
			_, patch := PatchPartitionOf(p.ID)
			return patch
		})
	}
}
