package restore

import (
	"strings"
	"testing"

	"github.com/tracevault/tracevault/snapshot/clickhouse"
)

// TestCreateDatabaseKeepsItsUUIDInPlaceOnly: a database restored in place on a server with
// UUIDs gets its recorded UUID back; a copy (--database-map), a database that had none, or an
// older server gets none; a UUID that is not one never reaches SQL.
func TestCreateDatabaseKeepsItsUUIDInPlaceOnly(t *testing.T) {
	const id = "3f1c2a9e-5b7d-4c1e-9a2b-0d4e6f8a1b2c"
	sec := &clickhouse.Section{Databases: []clickhouse.DatabaseRecord{{Name: "langfuse", Engine: "Atomic", UUID: id}, {Name: "old", Engine: "Ordinary", UUID: id},
		{Name: "forged", Engine: "Atomic", UUID: id + "' ENGINE = Memory"}}}
	tests := []struct {
		name, src, dst string
		uuids          bool
		cluster        string
		want, wantErr  string
	}{
		{"in place", "langfuse", "langfuse", true, "", "CREATE DATABASE IF NOT EXISTS `langfuse` UUID '" + id + "' ENGINE = Atomic", ""},
		{"in place on a cluster", "langfuse", "langfuse", true, "c1", "CREATE DATABASE IF NOT EXISTS `langfuse` UUID '" + id + "' ON CLUSTER `c1` ENGINE = Atomic", ""},
		{"a copy", "langfuse", "langfuse_copy", true, "", "CREATE DATABASE IF NOT EXISTS `langfuse_copy`", ""},
		{"not Atomic", "old", "old", true, "", "CREATE DATABASE IF NOT EXISTS `old`", ""},
		{"not recorded", "other", "other", true, "", "CREATE DATABASE IF NOT EXISTS `other`", ""},
		{"server without UUIDs", "langfuse", "langfuse", false, "", "CREATE DATABASE IF NOT EXISTS `langfuse`", ""},
		{"forged", "forged", "forged", true, "", "", "which is not a UUID"},
	}
	for _, tt := range tests {
		r := &Restorer{opts: Options{Cluster: tt.cluster}, first: &clickhouse.Server{Caps: clickhouse.Capabilities{DatabaseUUIDs: tt.uuids}}}
		got, err := r.createDatabase(sec, tt.src, tt.dst)
		switch {
		case tt.wantErr == "" && (err != nil || got != tt.want):
			t.Errorf("%s: %q, %v; want %q", tt.name, got, err, tt.want)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("%s: %q, %v; want an error saying %q", tt.name, got, err, tt.wantErr)
		}
	}
}
