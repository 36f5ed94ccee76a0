package blobs

import (
	"bytes"
	"context"
	"crypto/md5"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/tracevault/tracevault/internal/devstack"
	"github.com/tracevault/tracevault/snapshot"
	"github.com/tracevault/tracevault/snapshot/store"
)

// liveWriter writes to a container the way Langfuse's ingestion does while a backup runs: new
// event files, rewrites (small blobs grown past the read-ahead limit, large ones shrunk) and
// deletions. It remembers every version it ever began to write, so a snapshot can be checked
// against what the container could have held at each moment.
type liveWriter struct {
	s        scenario
	mu       sync.Mutex
	versions map[string][][16]byte
	deleted  map[string]bool
	ops      int
}

func (w *liveWriter) write(t *testing.T, name string, data []byte) {
	w.mu.Lock()
	w.versions[name] = append(w.versions[name], md5.Sum(data))
	w.mu.Unlock()
	// Error, not Fatal: the writer runs on a goroutine of its own.
	sum := md5.Sum(data)
	if err := w.s.src.Put(context.Background(), name, int64(len(data)), sum[:], bytes.NewReader(data)); err != nil {
		t.Error(err)
	}
}

// run writes until stop is closed, signalling started after its first 100 operations: by then
// the backup has listed every blob, so these land between its listing and its reads.
func (w *liveWriter) run(t *testing.T, stop <-chan struct{}, started chan<- struct{}) {
	r := rand.New(rand.NewPCG(7, 11))
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		switch i % 4 {
		case 0, 1:
			w.write(t, fmt.Sprintf("live/%05d", i), content(uint64(i), 200+r.IntN(3000)))
		case 2:
			// Seeds 0, 3, 6... are rewritten; every fourth of them grows past prefetchMax.
			n := 3 * r.IntN(100)
			size := 1000 + r.IntN(2000)
			if n%4 == 0 {
				size = prefetchMax + 40_000
			}
			w.write(t, fmt.Sprintf("seed/%03d", n), content(uint64(10_000+i), size))
			if i%8 == 2 {
				w.write(t, fmt.Sprintf("large/%d", r.IntN(3)), content(uint64(20_000+i), 1000))
			}
		case 3:
			// Seeds 1, 8, 15... are deleted (a rewrite never touches them: 7k+1 is never 3k).
			name := fmt.Sprintf("seed/%03d", 1+7*r.IntN(42))
			w.mu.Lock()
			gone := w.deleted[name]
			w.deleted[name] = true
			w.mu.Unlock()
			if !gone {
				if err := w.s.removeBlob(name); err != nil {
					t.Error(err)
				}
			}
		}
		w.mu.Lock()
		w.ops++
		if w.ops == 100 {
			close(started)
		}
		w.mu.Unlock()
	}
}

// gated is a container whose every read first calls open.
type gated struct {
	Container
	open func()
}

func (g gated) Open(ctx context.Context, name string) (io.ReadCloser, Entry, error) {
	g.open()
	return g.Container.Open(ctx, name)
}

// TestBackupUnderWrites backs up a container while a writer adds, rewrites and deletes blobs, on
// a directory and on Azurite. The backup completes; every blob its snapshot holds restores to a
// version that blob really had (never a mix of two), every blob the writer never touched is there
// as it was, every rewritten one that was never deleted is there; the listing's counts are the
// restored ones. Once the writer stops, the next backup reads no more than what it touched and
// restores the container exactly.
func TestBackupUnderWrites(t *testing.T) {
	for _, backend := range []string{"directory", "azurite"} {
		t.Run(backend, func(t *testing.T) {
			ctx := context.Background()
			var s scenario
			switch backend {
			case "directory":
				tmp := t.TempDir()
				src, err := OpenContainer(ctx, "file://"+filepath.Join(tmp, "src"), Credentials{}, true)
				if err != nil {
					t.Fatal(err)
				}
				repo, err := store.Open(ctx, store.Options{URL: "file://" + filepath.Join(tmp, "repo"), Log: quietLog()})
				if err != nil {
					t.Fatal(err)
				}
				s = scenario{src: src, srcURL: "file://" + filepath.Join(tmp, "src"), repo: repo}
			case "azurite":
				env := devstack.Require(t)
				srcName, src := azuriteContainer(t, env, "bloblive")
				repoName, _ := azuriteContainer(t, env, "bloblivrepo")
				repo := azuriteRepo(t, env, repoName)
				s = scenario{src: src, srcURL: "azblob://" + srcName, cred: Credentials{ConnectionString: env.AzureConnectionString}, repo: repo}
			}
			s.workers, s.packSize = 2, 1<<20

			w := &liveWriter{s: s, versions: map[string][][16]byte{}, deleted: map[string]bool{}}
			for i := range 300 {
				w.write(t, fmt.Sprintf("seed/%03d", i), content(uint64(i), 500+i*9))
			}
			for i := range 6 {
				w.write(t, fmt.Sprintf("large/%d", i), content(uint64(100+i), prefetchMax+200_000))
			}
			seeded := map[string][16]byte{}
			for name, v := range w.versions {
				seeded[name] = v[0]
			}

			// The writer starts when the backup reads its first blob, and no read goes on before
			// the writer's first operations: they land between the listing and the reads, and
			// the rest overlap the reads.
			stop, started := make(chan struct{}), make(chan struct{})
			var writing sync.WaitGroup
			var once sync.Once
			src := &Source{URL: s.srcURL, Credentials: s.cred, PackSize: s.packSize, Workers: s.workers, Log: quietLog(),
				open: func(ctx context.Context, url string, cred Credentials, create bool) (Container, error) {
					c, err := OpenContainer(ctx, url, cred, create)
					return gated{Container: c, open: func() {
						once.Do(func() {
							writing.Go(func() { w.run(t, stop, started) })
							<-started
						})
					}}, err
				}}
			m, err := snapshot.Run(ctx, s.repo, []snapshot.Source{src}, snapshot.Options{Log: quietLog()})
			w.mu.Lock()
			during := w.ops
			w.mu.Unlock()
			close(stop)
			writing.Wait()
			if err != nil {
				t.Fatalf("backup under writes: %v", err)
			}
			_, sec, ok := listingOf(m)
			if !ok {
				t.Fatalf("snapshot %s: no complete blob listing", m.ID)
			}
			t.Logf("%s: %d writes during the backup; snapshot holds %d blobs (%d read)", backend, during, sec.Blobs, sec.NewBlobs)

			dir := t.TempDir()
			if _, err := Restore(ctx, s.repo, m, RestoreOptions{URL: "file://" + dir, Log: quietLog()}); err != nil {
				t.Fatalf("restore the snapshot taken under writes: %v", err)
			}
			d, err := OpenContainer(ctx, "file://"+dir, Credentials{}, false)
			if err != nil {
				t.Fatal(err)
			}
			restored := contents(t, d)
			if int64(len(restored)) != sec.Blobs {
				t.Errorf("restored %d blobs; the listing counts %d", len(restored), sec.Blobs)
			}
			for name, sum := range restored {
				if !slices.Contains(w.versions[name], sum) {
					t.Errorf("blob %s restored with md5 %x, which no version of it had", name, sum)
				}
			}
			newer, gone := 0, 0
			for name, sum := range seeded {
				if got, ok := restored[name]; !ok {
					gone++
				} else if got != sum {
					newer++
				}
				touched := len(w.versions[name]) > 1 || w.deleted[name]
				got, ok := restored[name]
				switch {
				case !touched && (!ok || got != sum):
					t.Errorf("blob %s, untouched since the backup began, restored %v with md5 %x; want %x", name, ok, got, sum)
				case touched && !w.deleted[name] && !ok:
					t.Errorf("blob %s, rewritten but never deleted, is missing from the snapshot", name)
				}
			}

			t.Logf("%s: %d seeds restored as rewritten after the backup began, %d left out as deleted", backend, newer, gone)

			// Quiet again: the next backup reads at most what the writer touched.
			_, sec2 := backup(t, s)
			if touched := int64(len(w.versions) - len(seeded) + countTouched(w, seeded)); sec2.NewBlobs > touched {
				t.Errorf("the backup after the writes read %d blobs; the writer touched %d", sec2.NewBlobs, touched)
			}
			restoreAll(t, s.repo, latestID(t, s.repo), contents(t, s.src))
		})
	}
}

func countTouched(w *liveWriter, seeded map[string][16]byte) int {
	n := 0
	for name := range seeded {
		if len(w.versions[name]) > 1 {
			n++
		}
	}
	return n
}

func latestID(t *testing.T, repo *store.Repository) string {
	t.Helper()
	m, err := repo.Snapshot(context.Background(), "latest")
	if err != nil {
		t.Fatal(err)
	}
	return m.ID
}
