package store

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"
)

// statFails is a Fake backend whose Stat answers err while it is set: a storage fault or a
// deadline during the reuse check.
type statFails struct {
	Backend
	err error
}

func (s *statFails) Stat(ctx context.Context, name string) (ObjectInfo, error) {
	if s.err != nil {
		return ObjectInfo{}, s.err
	}
	return s.Backend.Stat(ctx, name)
}

// TestReuseCheckFakeStatFault: whether an earlier snapshot's object still exists is a question
// the storage must answer. A fault or a deadline while asking fails the put with that cause;
// only an object the storage says is gone (or damaged) is uploaded again. Before, every Stat
// error read as "missing or damaged": under a storage outage the blob source then told the
// operator a pack was lost and to delete snapshots that were whole.
func TestReuseCheckFakeStatFault(t *testing.T) {
	ctx := context.Background()
	fsb, err := NewFS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b := &statFails{Backend: fsb}
	repo := openRepo(t, b, Options{})
	first, _, err := repo.PutObject(ctx, "fp", bytes.NewReader(testData(8<<10, 1)))
	if err != nil {
		t.Fatal(err)
	}
	m := NewManifest(nil)
	m.Objects = []ManifestObject{{ObjectRef: first, Source: "clickhouse", Database: "default", Table: "traces", Partition: "p"}}
	m.Status = StatusComplete
	if err := repo.CommitManifest(ctx, m); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name       string
		statErr    error
		removed    bool
		wantErr    string // "" when the put succeeds
		wantReused bool
	}{
		{name: "present", wantReused: true},
		{name: "storage fault", statErr: errors.New("azblob: 503 ServerBusy"), wantErr: "503 ServerBusy"},
		{name: "deadline", statErr: context.DeadlineExceeded, wantErr: "deadline exceeded"},
		{name: "gone", removed: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b.err = tc.statErr
			defer func() { b.err = nil }()
			if tc.removed {
				if err := fsb.Delete(ctx, first.Name()); err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, os.ErrNotExist) {
					t.Fatal(err)
				}
			}
			ref, reused, err := repo.PutObject(ctx, "fp", bytes.NewReader(testData(8<<10, 1)))
			switch {
			case tc.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), first.Name()) {
					t.Fatalf("put during a Stat fault: err %v; want it to name the object and %q", err, tc.wantErr)
				}
			case err != nil:
				t.Fatal(err)
			case reused != tc.wantReused:
				t.Fatalf("reused %v, want %v (ref %s)", reused, tc.wantReused, ref.Name())
			}
		})
	}
}
