package jobs

import (
	"context"
	"fmt"
	"strings"

	"github.com/tracevault/tracevault/config"
	"github.com/tracevault/tracevault/snapshot/clickhouse"
	"github.com/tracevault/tracevault/snapshot/clickhouse/restore"
)

// Mismatch is one difference between a scratch copy and the manifest.
type Mismatch struct {
	Source    string `json:"source"`
	Target    string `json:"target"`
	Partition string `json:"partition,omitempty"`
	Want      uint64 `json:"want_rows"`
	Got       uint64 `json:"got_rows"`
	// Content marks a content checksum mismatch: WantSum over Want rows recorded at backup,
	// GotSum over Got rows restored.
	Content bool   `json:"content,omitempty"`
	WantSum uint64 `json:"want_sum,omitempty"`
	GotSum  uint64 `json:"got_sum,omitempty"`
}

func (m Mismatch) String() string {
	where := m.Target
	if m.Partition != "" {
		where += " partition " + m.Partition
	}
	if m.Content {
		return fmt.Sprintf("%s %s content checksum %d over %d rows, the snapshot %d over %d rows", m.Source, where, m.GotSum, m.Got, m.WantSum, m.Want)
	}
	return fmt.Sprintf("%s %s holds %d rows, the snapshot %d", m.Source, where, m.Got, m.Want)
}

// compare reads each loaded partition's active-part rows on the replica it was loaded into:
// a count independent of the restorer's own check; then, where the backup recorded one and the
// server computes its kind, its content checksum. It returns what the content comparison covered.
func (d *chDrill) compare(ctx context.Context) ([]Mismatch, uint64, string, error) {
	ch := d.cfg.ClickHouse
	servers, _, err := clickhouse.Connect(ctx, ch.Addresses, ch.HTTPAddresses, ClickHouseConn(ch), d.log)
	if err != nil {
		return nil, 0, "", fmt.Errorf("compare the clickhouse drill: %w", err)
	}
	defer closeServers(servers)
	byAddr := map[string]*clickhouse.Server{}
	for _, s := range servers {
		byAddr[s.Addr] = s
	}
	var out []Mismatch
	var total uint64
	var summed, unrecorded, otherKind int
	unsupported := ""
	for _, s := range d.plan.Steps {
		if s.Action != restore.ActionLoadPartition {
			continue
		}
		srv := byAddr[s.Replica]
		if srv == nil {
			return out, total, "", fmt.Errorf("compare %s partition %s: its replica %s no longer answers", s.Target, s.Partition, s.Replica)
		}
		db, table, _ := strings.Cut(s.Target, ".")
		var got uint64
		err := srv.Conn.QueryRow(ctx, "SELECT toUInt64(sum(rows)) FROM system.parts WHERE active AND database = ? AND table = ? AND partition_id = ?",
			db, table, s.Partition).Scan(&got)
		if err != nil {
			return out, total, "", fmt.Errorf("count rows of %s partition %s on %s: %w", s.Target, s.Partition, s.Replica, err)
		}
		total += got
		if got != s.Rows {
			out = append(out, Mismatch{Source: config.SourceClickHouse, Target: s.Target, Partition: s.Partition, Want: s.Rows, Got: got})
		}
		want, recorded := d.content[s.Object]
		_, sums := srv.Caps.ContentKind()
		switch {
		case !sums:
			unsupported = fmt.Sprintf("not supported by this server (ClickHouse %s on %s has no formatRow): rows compared", srv.Caps.Version, srv.Addr)
		case !recorded:
			unrecorded++
		case !srv.Caps.Sums(want.Kind):
			otherKind++
		default:
			sum, err := clickhouse.PartitionContent(ctx, srv, db, table, s.Partition, nil, want.Kind)
			if err != nil {
				return out, total, "", err
			}
			summed++
			if sum != want {
				out = append(out, Mismatch{Source: config.SourceClickHouse, Target: s.Target, Partition: s.Partition, Content: true,
					Want: want.Rows, Got: sum.Rows, WantSum: want.Sum, GotSum: sum.Sum})
			}
		}
	}
	if unsupported != "" {
		return out, total, unsupported, nil
	}
	note := fmt.Sprintf("compared for %d partitions", summed)
	if unrecorded > 0 {
		note += fmt.Sprintf("; %d partitions have none in the snapshot (taken on a server without formatRow, changed while backed up, or by an older tracevault): rows compared", unrecorded)
	}
	if otherKind > 0 {
		note += fmt.Sprintf("; %d partitions have a checksum of values (cityHash64(tuple(*))), which this server (ClickHouse %s, before 25.5) cannot compute: rows compared", otherKind, servers[0].Caps.Version)
	}
	return out, total, note, nil
}
