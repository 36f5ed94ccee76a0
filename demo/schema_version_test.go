package demo

import "testing"

// TestSchemaVersion: each migration set has its own stable version, and a set that does not
// exist is an error, not the version of nothing.
func TestSchemaVersion(t *testing.T) {
	seen := map[string]string{}
	for _, set := range []string{"clickhouse", "clickhouse-modern", "postgres"} {
		v, err := SchemaVersion(set)
		if err != nil || len(v) != 12 {
			t.Fatalf("SchemaVersion(%q) = %q, %v; want 12 hex digits", set, v, err)
		}
		if again, _ := SchemaVersion(set); again != v {
			t.Errorf("SchemaVersion(%q) changed between calls: %q, %q", set, v, again)
		}
		if other, ok := seen[v]; ok {
			t.Errorf("sets %q and %q have the same version %q", other, set, v)
		}
		seen[v] = set
	}
	if v, err := SchemaVersion("no-such-set"); err == nil {
		t.Errorf("SchemaVersion of a missing set = %q, want an error", v)
	}
}
