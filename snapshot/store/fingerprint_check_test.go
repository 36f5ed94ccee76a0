package store

import (
	"bytes"
	"context"
	"testing"
)

// checked is a source that says at its end whether it held what its fingerprint describes.
type checked struct {
	*bytes.Reader
	matches bool
}

func (c checked) MatchesFingerprint() bool { return c.matches }

// TestPutObjectForgetsAnUnmatchedFingerprint: an object whose source found, once read, that it
// did not hold what its fingerprint describes (a ClickHouse export whose partition changed, or
// whose server ended the answer early) is stored without the fingerprint: no later put with
// that fingerprint reuses it, in this process or from the manifests, and its manifest entry
// names none. A matching source's object is reused as before.
func TestPutObjectForgetsAnUnmatchedFingerprint(t *testing.T) {
	for _, tt := range []struct {
		name       string
		matches    bool
		wantReused bool
	}{
		{"matches its fingerprint", true, true},
		{"does not match its fingerprint", false, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			fsb, err := NewFS(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			repo := openRepo(t, fsb, Options{})
			first, reused, err := repo.PutObject(ctx, "fp", checked{bytes.NewReader(testData(4<<10, 1)), tt.matches})
			if err != nil || reused {
				t.Fatalf("first put: reused %v, %v", reused, err)
			}
			if (first.Fingerprint == "fp") != tt.matches {
				t.Fatalf("the stored object's fingerprint is %q; matches %v", first.Fingerprint, tt.matches)
			}
			m := NewManifest(nil)
			m.Objects = []ManifestObject{{ObjectRef: first, Source: "clickhouse", Database: "default", Table: "traces", Partition: "p"}}
			m.Status = StatusComplete
			if err := repo.CommitManifest(ctx, m); err != nil {
				t.Fatal(err)
			}
			for _, r := range []struct {
				what string
				repo *Repository
			}{{"this process", repo}, {"a new process, from the manifests", openRepo(t, fsb, Options{})}} {
				again, reused, err := r.repo.PutObject(ctx, "fp", bytes.NewReader(testData(4<<10, 2)))
				if err != nil {
					t.Fatal(err)
				}
				if reused != tt.wantReused || (reused && again.ID != first.ID) {
					t.Errorf("%s: reused %v (object %s, first %s); want reused %v", r.what, reused, again.ID, first.ID, tt.wantReused)
				}
			}
		})
	}
}
