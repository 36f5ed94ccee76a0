package demo

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Options say where to seed and how much.
type Options struct {
	// ClickHouse native addresses, replica 1 first. Replicated inserts go to the first; the
	// local event_log gets rows on every replica.
	ClickHouse []string
	// ClickHouseHTTP are the same replicas' HTTP interfaces, in the same order; required with
	// ClickHouse: the schema migrations run over the first, as `tracevault migrate` runs them.
	ClickHouseHTTP []string
	User           string
	Password       string
	// Cluster for ON CLUSTER DDL; empty for a single server.
	Cluster string
	// Modern seeds the modern schema (migrations/clickhouse-modern: Langfuse v3's tables with
	// Map, DateTime64, Bool, Decimal64, JSON, UUID, and v4's events_full, events_core with its
	// view and the staging table, with text indexes and the block columns lightweight updates
	// need) into one ClickHouse >= 25.7 without a cluster, instead of the 18.16 replicated one.
	Modern   bool
	Database string // default "default", as Langfuse uses
	// ZooKeeper servers for the migration lock; without them it excludes only this process.
	ZooKeeper []string
	// PostgresDSN is a libpq URL; empty skips PostgreSQL.
	PostgresDSN string
	// Blobs, when set, is Langfuse's blob container: seeding writes a file there for every row
	// of blob_storage_file_log (the 18.16 schema's) whose file it lacks.
	Blobs *Blobs

	Traces int    // observations (1-5 each) and scores (0-3 each) scale with it
	Seed   uint64 // same seed, same rows
	Start  time.Time
	Months int // data spread over this many monthly partitions from Start

	// Progress, if set, is called after each inserted chunk.
	Progress func(table string, rows int64)
}

// DefaultStart anchors demo time so that a seed always yields the same rows, whatever the date.
var DefaultStart = time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)

func (o *Options) defaults() error {
	if o.Database == "" {
		o.Database = "default"
	}
	if o.User == "" {
		o.User = "default"
	}
	if o.Start.IsZero() {
		o.Start = DefaultStart
	}
	if o.Months == 0 {
		o.Months = 6
	}
	if o.Traces < 0 || o.Months < 1 {
		return fmt.Errorf("demo seed: traces must be >= 0 and months >= 1 (got %d, %d)", o.Traces, o.Months)
	}
	return nil
}

// Result counts what Seed inserted.
type Result struct {
	Rows     map[string]int64 `json:"rows"` // "clickhouse:traces", "postgres:users", ...
	Skipped  []string         `json:"skipped,omitempty"`
	Duration time.Duration    `json:"duration_ns"`
}

// ErrAlreadySeeded is returned for a target that already holds demo data; seeding twice would
// double the non-replicated tables, so it is refused unless Options ask to append.
var ErrAlreadySeeded = errors.New("already holds demo data")

// Seed applies the pending demo migrations and inserts the demo rows into ClickHouse and
// PostgreSQL. A target that already has data is skipped and reported in Result.Skipped.
func Seed(ctx context.Context, opts Options) (Result, error) {
	if err := opts.defaults(); err != nil {
		return Result{}, err
	}
	start := time.Now()
	res := Result{Rows: map[string]int64{}}
	w := newWorld(opts.Seed)
	if len(opts.ClickHouse) > 0 {
		var err error
		if opts.Modern {
			err = seedModernClickHouse(ctx, opts, res.Rows)
		} else {
			err = seedClickHouse(ctx, opts, w, res.Rows)
		}
		switch {
		case errors.Is(err, ErrAlreadySeeded):
			res.Skipped = append(res.Skipped, "clickhouse")
		case err != nil:
			return res, err
		}
		if opts.Blobs != nil && opts.Blobs.URL != "" && !opts.Modern {
			if err := seedBlobs(ctx, opts, res.Rows); err != nil {
				return res, err
			}
		}
	}
	if opts.PostgresDSN != "" {
		err := seedPostgres(ctx, opts, w, res.Rows)
		switch {
		case errors.Is(err, ErrAlreadySeeded):
			res.Skipped = append(res.Skipped, "postgres")
		case err != nil:
			return res, err
		}
	}
	res.Duration = time.Since(start)
	return res, nil
}
