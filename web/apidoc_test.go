package web

import (
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/tracevault/tracevault/jobs"
	"github.com/tracevault/tracevault/snapshot/zookeeper"
)

// TestAPIKeysDocumented: the endpoint table of docs/status-page-and-api.md names exactly the
// top-level keys each endpoint's type encodes, so a field added to an answer (last_drill was
// one) cannot go undocumented, nor a documented one stay after it went.
func TestAPIKeysDocumented(t *testing.T) {
	data, err := os.ReadFile("../docs/status-page-and-api.md")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path string
		typ  any
	}{
		{"GET /api/v1/status", jobs.Status{}},
		{"GET /api/v1/problems", jobs.Problem{}},
		{"GET /api/v1/jobs", jobs.JobStatus{}},
		{"GET /api/v1/runs", jobs.Run{}},
		{"GET /api/v1/snapshots", jobs.SnapshotSummary{}},
		{"GET /api/v1/zookeeper", zookeeper.ServerHealth{}},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			row := regexp.MustCompile("(?m)^\\| `" + regexp.QuoteMeta(tt.path) + "` \\| `\\[?\\{([^}`]*)\\}").FindStringSubmatch(string(data))
			if row == nil {
				t.Fatalf("the endpoint table has no row for %s with its keys", tt.path)
			}
			var documented []string
			for _, m := range regexp.MustCompile(`"([a-z0-9_]+)"`).FindAllStringSubmatch(row[1], -1) {
				documented = append(documented, m[1])
			}
			encoded := jsonKeys(reflect.TypeOf(tt.typ))
			for _, k := range encoded {
				if !slices.Contains(documented, k) {
					t.Errorf("%s answers %q, which the docs do not list", tt.path, k)
				}
			}
			for _, k := range documented {
				if !slices.Contains(encoded, k) {
					t.Errorf("the docs list %q for %s, which it does not answer", k, tt.path)
				}
			}
		})
	}
}

// jsonKeys are the names encoding/json gives a struct's exported fields.
func jsonKeys(t reflect.Type) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if !f.IsExported() || name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out = append(out, name)
	}
	return out
}
