package store

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
)

// lostAnswer is a backend whose puts of manifests fail: after storing them (the answer lost on
// the way back) or before.
type lostAnswer struct {
	Backend
	stored bool
}

var errAnswer = errors.New("read: connection reset by peer")

func (b lostAnswer) Put(ctx context.Context, name string, r io.Reader) (int64, error) {
	if !strings.HasPrefix(name, "snapshots/") {
		return b.Backend.Put(ctx, name, r)
	}
	if b.stored {
		n, err := b.Backend.Put(ctx, name, r)
		if err != nil {
			return n, err
		}
	}
	return 0, errAnswer
}

// TestCommitAnswerLost: a commit whose answer was lost after the manifest was stored is a
// commit (the snapshot is listed: a failure would contradict it); one that never reached the
// storage is a failure, and nothing is listed.
func TestCommitAnswerLost(t *testing.T) {
	ctx := context.Background()
	for _, stored := range []bool{true, false} {
		fs, err := NewFS(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		r := openRepo(t, lostAnswer{Backend: fs, stored: stored}, Options{})
		m := NewManifest(nil)
		m.Status = StatusComplete
		err = r.CommitManifest(ctx, m)
		snaps, lerr := r.Snapshots(ctx)
		if lerr != nil {
			t.Fatal(lerr)
		}
		listed := len(snaps) == 1 && snaps[0].ID == m.ID
		if stored && (err != nil || !listed) {
			t.Errorf("stored, answer lost: commit %v, listed %v; want a commit and the snapshot listed", err, listed)
		}
		if !stored && (!errors.Is(err, errAnswer) || len(snaps) != 0) {
			t.Errorf("never stored: commit %v, %d listed; want the error and nothing listed", err, len(snaps))
		}
	}
}
