package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestBackendConformance runs the same contract against every backend: one subtest per
// property, each on a backend of its own, so that a failure names the property.
func TestBackendConformance(t *testing.T) {
	for _, bc := range backendCases {
		t.Run(bc.name, func(t *testing.T) {
			for _, p := range backendProperties {
				t.Run(p.name, func(t *testing.T) {
					p.check(t, context.Background(), bc.open(t, AzureOptions{BlockSize: 1 << 20, Concurrency: 2}))
				})
			}
		})
	}
}

// backendProperties are the contract every backend keeps.
var backendProperties = []struct {
	name  string
	check func(t *testing.T, ctx context.Context, b Backend)
}{
	{"put stores the whole stream and get returns it", func(t *testing.T, ctx context.Context, b Backend) {
		putObject(t, ctx, b)
	}},
	{"ranged get returns the range", func(t *testing.T, ctx context.Context, b Backend) {
		data := putObject(t, ctx, b)
		if got := reader(t)(b.Get(ctx, "data/ab/obj", 1000, 5000)); !bytes.Equal(got, data[1000:6000]) {
			t.Fatal("ranged get returned the wrong bytes")
		}
	}},
	{"stat gives the size", func(t *testing.T, ctx context.Context, b Backend) {
		data := putObject(t, ctx, b)
		if info, err := b.Stat(ctx, "data/ab/obj"); err != nil || info.Size != int64(len(data)) {
			t.Fatalf("stat: %+v, %v", info, err)
		}
	}},
	{"list returns what is under the prefix only", func(t *testing.T, ctx context.Context, b Backend) {
		putObject(t, ctx, b)
		_, _ = b.Put(ctx, "snapshots/s1.json", strings.NewReader("{}"))
		var names []string
		if err := b.List(ctx, "data/", func(o ObjectInfo) error { names = append(names, o.Name); return nil }); err != nil {
			t.Fatal(err)
		}
		if sort.Strings(names); strings.Join(names, ",") != "data/ab/obj" {
			t.Errorf("list data/ = %v", names)
		}
	}},
	{"overwrite is atomic and complete", func(t *testing.T, ctx context.Context, b Backend) {
		putObject(t, ctx, b)
		if _, err := b.Put(ctx, "data/ab/obj", strings.NewReader("v2")); err != nil {
			t.Fatal(err)
		}
		if got := reader(t)(b.Get(ctx, "data/ab/obj", 0, -1)); string(got) != "v2" {
			t.Errorf("after overwrite: %q", got)
		}
	}},
	{"deleting a missing object succeeds", func(t *testing.T, ctx context.Context, b Backend) {
		putObject(t, ctx, b)
		if err := b.Delete(ctx, "data/ab/obj"); err != nil {
			t.Fatal(err)
		}
		if err := b.Delete(ctx, "data/ab/obj"); err != nil {
			t.Errorf("deleting a missing object: %v", err)
		}
	}},
	{"a deleted object is not found", func(t *testing.T, ctx context.Context, b Backend) {
		putObject(t, ctx, b)
		if err := b.Delete(ctx, "data/ab/obj"); err != nil {
			t.Fatal(err)
		}
		for _, err := range []error{func() error { _, err := b.Get(ctx, "data/ab/obj", 0, -1); return err }(), func() error { _, err := b.Stat(ctx, "data/ab/obj"); return err }()} {
			if !errors.Is(err, ErrNotFound) {
				t.Errorf("missing object: %v, want ErrNotFound", err)
			}
		}
	}},
}

// putObject stores data/ab/obj, a little over three blocks of mixed random and repetitive bytes,
// and reads it back whole; it returns the bytes.
func putObject(t *testing.T, ctx context.Context, b Backend) []byte {
	t.Helper()
	data := testData(3<<20+17, 1)
	if n, err := b.Put(ctx, "data/ab/obj", bytes.NewReader(data)); err != nil || n != int64(len(data)) {
		t.Fatalf("put: %d, %v", n, err)
	}
	if got := reader(t)(b.Get(ctx, "data/ab/obj", 0, -1)); !bytes.Equal(got, data) {
		t.Fatalf("get returned %d bytes, want %d identical", len(got), len(data))
	}
	return data
}

// TestBackendCreateIsExclusive: Create stores a free name, refuses a taken one with ErrExists
// leaving it untouched, and of writers racing for one name exactly one wins.
func TestBackendCreateIsExclusive(t *testing.T) {
	for _, bc := range backendCases {
		t.Run(bc.name, func(t *testing.T) {
			ctx := context.Background()
			b := bc.open(t, AzureOptions{BlockSize: 1 << 20, Concurrency: 2})
			read := reader(t)
			if n, err := b.Create(ctx, "pitr/c/seg/A.json", strings.NewReader("first")); err != nil || n != 5 {
				t.Fatalf("create a free name: %d, %v", n, err)
			}
			if _, err := b.Create(ctx, "pitr/c/seg/A.json", strings.NewReader("second")); !errors.Is(err, ErrExists) {
				t.Fatalf("create a taken name: %v, want ErrExists", err)
			}
			if got := read(b.Get(ctx, "pitr/c/seg/A.json", 0, -1)); string(got) != "first" {
				t.Fatalf("a refused create changed the object: %q", got)
			}
			var names []string
			if err := b.List(ctx, "pitr/", func(o ObjectInfo) error { names = append(names, o.Name); return nil }); err != nil {
				t.Fatal(err)
			}
			if strings.Join(names, ",") != "pitr/c/seg/A.json" {
				t.Errorf("list after a refused create = %v (a temporary left behind?)", names)
			}
			const writers = 8
			won := make(chan string, writers)
			var wg sync.WaitGroup
			for i := range writers {
				wg.Go(func() {
					who := fmt.Sprintf("writer %d", i)
					_, err := b.Create(ctx, "pitr/c/seg/B.json", strings.NewReader(who))
					switch {
					case err == nil:
						won <- who
					case !errors.Is(err, ErrExists):
						t.Errorf("%s: %v, want nil or ErrExists", who, err)
					}
				})
			}
			wg.Wait()
			close(won)
			var winners []string
			for w := range won {
				winners = append(winners, w)
			}
			if len(winners) != 1 {
				t.Fatalf("%d writers created the same name (%v), want exactly 1", len(winners), winners)
			}
			if got := read(b.Get(ctx, "pitr/c/seg/B.json", 0, -1)); string(got) != winners[0] {
				t.Errorf("the object holds %q, but %s won", got, winners[0])
			}
		})
	}
}

func TestLockIsExclusiveAndNamesHolder(t *testing.T) {
	for _, bc := range backendCases {
		t.Run(bc.name, func(t *testing.T) {
			ctx := context.Background()
			b := bc.open(t, AzureOptions{})
			l, err := b.Lock(ctx, "repository", 15*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			_, err = b.Lock(ctx, "repository", 15*time.Second)
			host, _ := os.Hostname()
			if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), host) {
				t.Fatalf("second lock: %v; want ErrLocked naming host %s", err, host)
			}
			if err := l.Release(ctx); err != nil {
				t.Fatal(err)
			}
			l2, err := b.Lock(ctx, "repository", 15*time.Second)
			if err != nil {
				t.Fatalf("lock after release: %v", err)
			}
			_ = l2.Release(ctx)
		})
	}
}

// TestDeadHoldersLockExpires: a holder that stops renewing (it died) loses the lock after its
// lease; filesystem locks also free at once when their pid is gone on this host.
func TestDeadHoldersLockExpires(t *testing.T) {
	t.Run("fs stale lock file", func(t *testing.T) {
		dir := t.TempDir()
		b, _ := NewFS(dir)
		p := filepath.Join(dir, "locks", "repository")
		_ = os.MkdirAll(filepath.Dir(p), 0o750)
		_ = os.WriteFile(p, []byte(`{"host":"elsewhere","pid":1}`), 0o640)
		old := time.Now().Add(-time.Hour)
		_ = os.Chtimes(p, old, old)
		l, err := b.Lock(context.Background(), "repository", time.Minute)
		if err != nil {
			t.Fatalf("stale lock not taken over: %v", err)
		}
		_ = l.Release(context.Background())
	})
	t.Run("azurite lease", func(t *testing.T) {
		ctx := context.Background()
		b := openAzurite(t, AzureOptions{}).(*Azure)
		l, err := b.Lock(ctx, "repository", 15*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		// Simulate death: stop renewing without releasing.
		r := l.(*renewal)
		close(r.stop)
		<-r.done
		deadline := time.Now().Add(30 * time.Second)
		for {
			l2, err := b.Lock(ctx, "repository", 15*time.Second)
			if err == nil {
				_ = l2.Release(ctx)
				return
			}
			if !errors.Is(err, ErrLocked) || time.Now().After(deadline) {
				t.Fatalf("lease of a dead holder not expired after 30 s: %v", err)
			}
			time.Sleep(time.Second)
		}
	})
}
