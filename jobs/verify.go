package jobs

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/tracevault/tracevault/config"
	"github.com/tracevault/tracevault/snapshot/clickhouse"
	"github.com/tracevault/tracevault/snapshot/clickhouse/native"
	"github.com/tracevault/tracevault/snapshot/clickhouse/partsum"
	"github.com/tracevault/tracevault/snapshot/postgres/pitr"
	"github.com/tracevault/tracevault/snapshot/store"
)

// ContentChecks are the checks a read-data verify makes of what objects hold, beyond their
// SHA-256: each freeze-mode partition (a tar of frozen parts) against its parts' own
// checksums.txt, which catches damage on the server's disk before the upload, and each logical
// partition's rows against the rows its snapshot records.
func ContentChecks(m *store.Manifest) (map[string]store.ContentCheck, error) {
	if _, ok := m.Sections[config.SourceClickHouse]; !ok {
		return nil, nil
	}
	sec, _, err := clickhouse.SnapshotSection(m)
	if err != nil {
		return nil, err
	}
	checks := map[string]store.ContentCheck{}
	for _, t := range sec.Tables {
		walkable := walkableColumns(t.Columns)
		for _, p := range t.Partitions {
			if p.Object == "" {
				continue
			}
			where := fmt.Sprintf("%s.%s partition %s (replica %s)", t.Database, t.Name, p.ID, p.Replica)
			switch {
			case p.Format == clickhouse.FormatPartsTar:
				checks[p.Object] = func(ctx context.Context, r io.Reader) error {
					if err := partsum.CheckTar(ctx, r); err != nil {
						return fmt.Errorf("%s: %w", where, err)
					}
					return nil
				}
			case p.Format == clickhouse.FormatNative && walkable:
				checks[p.Object] = nativeRows(where, p.Rows)
			}
		}
	}
	return checks, nil
}

// nativeRows checks that a logical partition object holds the rows its snapshot records: a
// restore refuses one that does not, so verify should say so first. Before uploads refused a
// source that failed (store.UploadSource), an export whose request failed was stored empty, under
// the partition's fingerprint, and reused by later snapshots; its SHA-256 is its own.
func nativeRows(where string, want uint64) store.ContentCheck {
	return func(ctx context.Context, r io.Reader) error {
		got, err := native.Check(r)
		if err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		if uint64(got) != want {
			return fmt.Errorf("%s: the object holds %d rows where the snapshot records %d, so a restore would refuse it; "+
				"forget the snapshots that name this object, and the next backup exports the partition again", where, got, want)
		}
		return nil
	}
}

// walkableColumns says whether the Native scanner can walk every column ("name type") of a
// table: the row check reads the blocks, which it cannot do past a type it does not know.
func walkableColumns(cols []string) bool {
	for _, c := range cols {
		_, typ, ok := strings.Cut(c, " ")
		if !ok || native.Walkable(typ) != nil {
			return false
		}
	}
	return len(cols) > 0
}

// VerifyRequest is one verify: `tracevault verify`, or the scheduled verify job.
type VerifyRequest struct {
	Snapshots []string // IDs or unique prefixes; none: every snapshot
	// ReadData reads objects back and checks their checksums and content, not only their
	// existence and size; Sample (ParseSample) limits it to a share of the objects.
	ReadData bool
	Sample   store.Sample
}

// ParseSample reads a sample: P% (the rotation's next share) or N/M (bucket N of M).
func ParseSample(s string) (store.Sample, error) { return store.ParseSample(s) }

// verifyRequest is the scheduled verify job's: existence and size of every object, and with
// [verify] sample the data of the rotation's next share, content checks included.
func verifyRequest(cfg config.Verify) (VerifyRequest, error) {
	var req VerifyRequest
	if cfg.Sample == "" {
		return req, nil
	}
	s, err := store.ParseSample(cfg.Sample)
	if err != nil {
		return req, fmt.Errorf("[verify] sample: %w", err)
	}
	req.ReadData, req.Sample = true, s
	return req, nil
}

// VerifyReport is the store's, with the point-in-time chains' counts; their problems are among
// Problems.
type VerifyReport struct {
	store.VerifyReport
	PITR pitr.VerifyReport `json:"pitr"`
}

// Verify checks the requested snapshots' objects (all when none is named), with ContentChecks
// when it reads data, and the point-in-time chains: every chain with all snapshots, else the
// chains whose base is among them. With a sample, the segments of the bucket the objects were
// read from are read.
func Verify(ctx context.Context, repo *store.Repository, req VerifyRequest) (VerifyReport, error) {
	var rep VerifyReport
	var err error
	ids := req.Snapshots
	opts := store.VerifyOptions{ReadData: req.ReadData, Sample: req.Sample, Content: ContentChecks}
	if rep.VerifyReport, err = repo.VerifyWith(ctx, ids, opts); err != nil {
		return rep, err
	}
	po := pitr.VerifyOptions{ReadData: opts.ReadData, Sample: opts.Sample}
	if s := rep.Sample; s != nil {
		po.Bucket = s.Bucket
	}
	if len(ids) > 0 {
		po.Bases = map[string]bool{}
		for _, id := range ids {
			m, err := repo.Snapshot(ctx, id)
			if err != nil {
				return rep, err
			}
			po.Bases[m.ID] = true
		}
	}
	if rep.PITR, err = pitr.Verify(ctx, repo, po); err != nil {
		return rep, err
	}
	rep.Problems = append(rep.Problems, rep.PITR.Problems...)
	rep.BytesRead += rep.PITR.BytesRead
	rep.PITR.Problems = nil
	if rep.Problems == nil {
		// "problems": [] for a clean repository; null reads as "not checked" to a JSON consumer.
		rep.Problems = []store.VerifyProblem{}
	}
	return rep, nil
}
