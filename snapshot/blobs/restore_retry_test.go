package blobs

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tracevault/tracevault/snapshot/store"
)

// failingTarget is a restore target whose writes of some blobs fail, each after reading half of
// the blob, a given number of times before they go through.
type failingTarget struct {
	Container
	err      error
	mu       sync.Mutex
	fail     map[string]int // writes of the blob still to fail; -1: every one
	attempts map[string]int
}

func (f *failingTarget) Put(ctx context.Context, name string, size int64, md5 []byte, r io.Reader) error {
	f.mu.Lock()
	f.attempts[name]++
	left := f.fail[name]
	if left > 0 {
		f.fail[name]--
	}
	f.mu.Unlock()
	if left != 0 {
		_, _ = io.CopyN(io.Discard, r, size/2)
		return fmt.Errorf("write %s: %w", name, f.err)
	}
	return f.Container.Put(ctx, name, size, md5, r)
}

// TestRestoreWritesABlobAgainFromItsPack: a blob whose write to the target broke off is
// written again, a large one read anew from its pack, and the restore ends equal to the source;
// a failure that would repeat (a permission) is not written again, and a target that keeps
// failing ends the restore naming the attempts and the cause.
func TestRestoreWritesABlobAgainFromItsPack(t *testing.T) {
	wait := putRetryWait
	putRetryWait = func(int) time.Duration { return time.Millisecond }
	defer func() { putRetryWait = wait }()
	tmp := t.TempDir()
	ctx := context.Background()
	src, err := OpenContainer(ctx, "file://"+filepath.Join(tmp, "src"), Credentials{}, true)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		put(t, src, fmt.Sprintf("small/%02d", i), content(uint64(i), 1000))
	}
	put(t, src, "large/a", content(100, 3*smallBlob))
	put(t, src, "large/b", content(101, 2*smallBlob))
	repo, err := store.Open(ctx, store.Options{URL: "file://" + filepath.Join(tmp, "repo"), Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	m, _ := backup(t, scenario{srcURL: "file://" + filepath.Join(tmp, "src"), repo: repo, workers: 1, packSize: 16 << 20})
	reset := &net.OpError{Op: "write", Net: "tcp", Err: syscall.ECONNRESET}
	for i, tc := range []struct {
		name     string
		err      error
		fail     map[string]int
		attempts map[string]int
		wantErr  string
	}{
		{"broken connections, once each", reset, map[string]int{"large/a": 1, "small/03": 1, "large/b": 2}, map[string]int{"large/a": 2, "small/03": 2, "large/b": 3}, ""},
		{"a write that would fail again", fs.ErrPermission, map[string]int{"large/a": 1}, map[string]int{"large/a": 1}, "permission denied"},
		{"a connection that never holds", reset, map[string]int{"large/b": -1}, map[string]int{"large/b": putAttempts}, fmt.Sprintf("after %d attempts: write large/b: write tcp: connection reset by peer", putAttempts)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(tmp, fmt.Sprintf("target%d", i))
			var target *failingTarget
			_, err := Restore(ctx, repo, m, RestoreOptions{URL: "file://" + dir, Workers: 2, Log: quietLog(),
				open: func(ctx context.Context, url string, cred Credentials, create bool) (Container, error) {
					c, err := OpenContainer(ctx, url, cred, create)
					target = &failingTarget{Container: c, err: tc.err, fail: tc.fail, attempts: map[string]int{}}
					return target, err
				}})
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("restore: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("restore: %v, want %q", err, tc.wantErr)
			}
			for name, want := range tc.attempts {
				if got := target.attempts[name]; got != want {
					t.Errorf("%s written %d times, want %d", name, got, want)
				}
			}
			if tc.wantErr == "" {
				assertContents(t, contents(t, target), contents(t, src))
			}
		})
	}
}
