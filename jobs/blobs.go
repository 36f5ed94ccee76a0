package jobs

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"path"

	"github.com/tracevault/tracevault/config"
	"github.com/tracevault/tracevault/snapshot/blobs"
	"github.com/tracevault/tracevault/snapshot/clickhouse"
)

// BlobCredentials maps [blobs]' Azure keys to the source's.
func BlobCredentials(b config.Blobs) blobs.Credentials {
	return blobs.Credentials{ConnectionString: b.ConnectionString.Reveal(), AccountName: b.AccountName,
		AccountKey: b.AccountKey.Reveal(), SASToken: b.SASToken.Reveal(), Endpoint: b.Endpoint}
}

func blobSource(cfg *config.Config, log *slog.Logger) *blobs.Source {
	b := cfg.Blobs
	src := &blobs.Source{URL: b.URL, Credentials: BlobCredentials(b), Workers: b.Workers, PackSize: int64(b.PackSize), Log: log}
	if len(cfg.ClickHouse.Addresses) > 0 {
		src.FileLog = clickHouseFileLog(cfg.ClickHouse)
	}
	return src
}

// clickHouseFileLog reads blob_storage_file_log from the first replica that answers (every
// replica holds the same rows): the files its live rows reference, in byte order.
func clickHouseFileLog(ch config.ClickHouse) blobs.FileLog {
	return func(ctx context.Context) (string, iter.Seq2[string, error], error) {
		var errs []error
		for _, addr := range ch.Addresses {
			s, err := clickhouse.Dial(ctx, addr, ClickHouseConn(ch))
			if err != nil {
				errs = append(errs, err)
				continue
			}
			table, err := fileLogTable(ctx, s, ch.Databases)
			if err != nil {
				s.Close()
				return "", nil, err
			}
			rows, err := s.Conn.Query(ctx, fmt.Sprintf("SELECT DISTINCT bucket_path FROM %s FINAL WHERE is_deleted = 0 ORDER BY bucket_path", table))
			if err != nil {
				s.Close()
				return "", nil, fmt.Errorf("read %s on %s: %w", table, addr, err)
			}
			return table, func(yield func(string, error) bool) {
				defer s.Close()
				defer rows.Close()
				for rows.Next() {
					var p string
					if err := rows.Scan(&p); err != nil {
						yield("", fmt.Errorf("read %s on %s: %w", table, addr, err))
						return
					}
					if !yield(p, nil) {
						return
					}
				}
				if err := rows.Err(); err != nil {
					yield("", fmt.Errorf("read %s on %s: %w", table, addr, err))
				}
			}, nil
		}
		return "", nil, fmt.Errorf("read blob_storage_file_log: no replica answered: %w", errors.Join(errs...))
	}
}

// fileLogTable finds blob_storage_file_log in the first configured database that has one.
func fileLogTable(ctx context.Context, s *clickhouse.Server, databases []string) (string, error) {
	rows, err := s.Conn.Query(ctx, "SELECT database FROM system.tables WHERE name = 'blob_storage_file_log' ORDER BY database")
	if err != nil {
		return "", fmt.Errorf("find blob_storage_file_log on %s: %w", s.Addr, err)
	}
	defer rows.Close()
	for rows.Next() {
		var db string
		if err := rows.Scan(&db); err != nil {
			return "", err
		}
		for _, g := range databases {
			if ok, _ := path.Match(g, db); ok {
				return clickhouse.QuoteIdent(db) + ".blob_storage_file_log", nil
			}
		}
	}
	if err := rows.Err(); err != nil {
		return "", err
	}
	return "", fmt.Errorf("%w in the databases %v of %s", blobs.ErrNoFileLog, databases, s.Addr)
}
