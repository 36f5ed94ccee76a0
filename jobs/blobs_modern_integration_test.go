package jobs

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/tracevault/tracevault/config"
	"github.com/tracevault/tracevault/internal/devstack"
	"github.com/tracevault/tracevault/snapshot/blobs"
	"github.com/tracevault/tracevault/snapshot/clickhouse"
)

// TestFileLogOnModernClickHouse reads blob_storage_file_log on ClickHouse 26.x (the 18.16
// cluster's is read by TestFullSetWithBlobs): live rows only, the latest version of each, each
// file once, in byte order; a database without the table is a skipped check, not an error.
func TestFileLogOnModernClickHouse(t *testing.T) {
	env := devstack.RequireModern(t)
	db := env.ModernDatabase(t, "it_filelog")
	for _, q := range []string{
		"CREATE TABLE " + db + ".blob_storage_file_log (id String, bucket_path String, event_ts DateTime, is_deleted UInt8) ENGINE = ReplacingMergeTree(event_ts) ORDER BY id",
		"INSERT INTO " + db + ".blob_storage_file_log VALUES ('1', 'p/b.json', '2026-01-01 00:00:00', 0), ('2', 'p/a.json', '2026-01-01 00:00:00', 0), ('3', 'p/a.json', '2026-01-01 00:00:00', 0), ('4', 'p/gone.json', '2026-01-01 00:00:00', 0), ('4', 'p/gone.json', '2026-01-02 00:00:00', 1), ('5', 'P/upper.json', '2026-01-01 00:00:00', 0)",
	} {
		if _, err := env.ModernQuery(q); err != nil {
			t.Fatal(err)
		}
	}
	ch := config.Defaults().ClickHouse
	ch.Addresses = []string{env.CHModernNative}
	ch.Databases = []string{db}
	table, paths, err := clickHouseFileLog(ch)(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for p, err := range paths {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, p)
	}
	if want := []string{"P/upper.json", "p/a.json", "p/b.json"}; table != clickhouse.QuoteIdent(db)+".blob_storage_file_log" || !slices.Equal(got, want) {
		t.Fatalf("%s: %q, want %q", table, got, want)
	}

	ch.Databases = []string{env.ModernDatabase(t, "it_nofilelog")}
	if _, _, err := clickHouseFileLog(ch)(context.Background()); !errors.Is(err, blobs.ErrNoFileLog) {
		t.Fatalf("a database without the table: %v", err)
	}
}
