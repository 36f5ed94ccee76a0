package jobs

import (
	"context"
	"fmt"
	"io"

	"github.com/tracevault/tracevault/config"
	"github.com/tracevault/tracevault/snapshot/clickhouse"
	"github.com/tracevault/tracevault/snapshot/clickhouse/partsum"
	"github.com/tracevault/tracevault/snapshot/store"
)

// ContentChecks are the checks a read-data verify makes of what objects hold, beyond their
// SHA-256: each freeze-mode partition (a tar of frozen parts) against its parts' own
// checksums.txt, which catches damage on the server's disk before the upload.
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
		for _, p := range t.Partitions {
			if p.Format != clickhouse.FormatPartsTar || p.Object == "" {
				continue
			}
			where := fmt.Sprintf("%s.%s partition %s (replica %s)", t.Database, t.Name, p.ID, p.Replica)
			checks[p.Object] = func(ctx context.Context, r io.Reader) error {
				if err := partsum.CheckTar(ctx, r); err != nil {
					return fmt.Errorf("%s: %w", where, err)
				}
				return nil
			}
		}
	}
	return checks, nil
}

// verifyOptions are the scheduled verify job's: existence and size of every object, and with
// [verify] sample the data of the rotation's next share, content checks included.
func verifyOptions(cfg config.Verify) (store.VerifyOptions, error) {
	opts := store.VerifyOptions{Content: ContentChecks}
	if cfg.Sample == "" {
		return opts, nil
	}
	s, err := store.ParseSample(cfg.Sample)
	if err != nil {
		return opts, fmt.Errorf("[verify] sample: %w", err)
	}
	opts.ReadData, opts.Sample = true, s
	return opts, nil
}
