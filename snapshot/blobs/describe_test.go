package blobs

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/tracevault/tracevault/snapshot/store"
)

func TestDescribeReportsTheCheck(t *testing.T) {
	for _, tc := range []struct {
		name  string
		check *Check
		want  string
	}{
		{"missing files", &Check{Table: "default.blob_storage_file_log", Files: 3, Missing: 1, MissingExamples: []string{"p/traces/t.json"}}, "1 missing from the container, 0 files unreferenced; MISSING e.g. p/traces/t.json"},
		{"no table", &Check{Skipped: "no blob_storage_file_log table in the databases [default]"}, "check    skipped: no blob_storage_file_log"},
		{"query failed", &Check{Error: "connection refused"}, "FAILED to read the file log: connection refused"},
		{"no clickhouse", nil, "not run"},
		{"copied", &Check{Skipped: "x"}, "2 stored by this snapshot (3.0 MiB), 1 of them copied server-side (2.0 MiB)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw, _ := json.Marshal(Section{URL: "azblob://events/", Blobs: 4, NewBlobs: 2, NewBytes: 3 << 20, Copied: 1, CopiedBytes: 2 << 20, Cut: Cut{Newest: "p/x"}, Check: tc.check})
			m := &store.Manifest{Sections: map[string]json.RawMessage{Name: raw}}
			got := strings.Join(Describe(m), "\n")
			if !strings.Contains(got, tc.want) || !strings.Contains(got, `newest blob "p/x"`) {
				t.Fatalf("got\n%s\nwant %q", got, tc.want)
			}
		})
	}
	if Describe(&store.Manifest{}) != nil {
		t.Fatal("a manifest without blobs is described")
	}
}
