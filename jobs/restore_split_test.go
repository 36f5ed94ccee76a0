package jobs

import (
	"testing"

	"github.com/tracevault/tracevault/config"
)

// TestPostgresRestoreOptionsSplit: [postgres] restore_split_table_size reaches the restorer,
// and 0 in the file means never, not the restorer's default.
func TestPostgresRestoreOptionsSplit(t *testing.T) {
	for _, tc := range []struct {
		size config.Size
		want int64
	}{
		{0, -1},
		{1 << 20, 1 << 20},
		{64 << 20, 64 << 20},
	} {
		if got := postgresRestoreOptions(config.Postgres{RestoreSplitTableSize: tc.size}, "", nil).SplitBytes; got != tc.want {
			t.Errorf("restore_split_table_size %d: SplitBytes %d, want %d", tc.size, got, tc.want)
		}
	}
}
