package blobs

import (
	"bytes"
	"context"
	"crypto/md5"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"

	"github.com/tracevault/tracevault/internal/devstack"
	"github.com/tracevault/tracevault/snapshot"
	"github.com/tracevault/tracevault/snapshot/store"
)

// countedContainer is an Azure container that counts the bytes tracevault reads from it, and
// can hand the storage service a source URL it cannot read (a broken signature).
type countedContainer struct {
	*azureContainer
	read     atomic.Int64
	badURL   bool
	copyURLs atomic.Int64
	log      bytes.Buffer // what the backup logged
}

func (c *countedContainer) Open(ctx context.Context, name string) (io.ReadCloser, Entry, error) {
	rc, e, err := c.azureContainer.Open(ctx, name)
	if err != nil {
		return nil, e, err
	}
	return countedReader{rc, &c.read}, e, nil
}

func (c *countedContainer) readURL(ctx context.Context, name string) (string, error) {
	c.copyURLs.Add(1)
	u, err := c.azureContainer.readURL(ctx, name)
	if c.badURL {
		u = strings.Replace(u, "sig=", "sig=AAAA", 1)
	}
	return u, err
}

type countedReader struct {
	io.ReadCloser
	n *atomic.Int64
}

func (r countedReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	r.n.Add(int64(n))
	return n, err
}

// copyFixture is a source container on Azurite holding two blobs large enough to copy, one
// small and one empty.
type copyFixture struct {
	env    *devstack.Env
	srcURL string
	src    *azureContainer
	want   map[string][16]byte
	large  int64 // bytes of the two large blobs
	small  int64
}

const testCopyMin = 512 << 10

func newCopyFixture(t *testing.T) *copyFixture {
	env := devstack.Require(t)
	name, src := azuriteContainer(t, env, "copysrc")
	f := &copyFixture{env: env, srcURL: "azblob://" + name, src: src, want: map[string][16]byte{}}
	for name, n := range map[string]int{"big/a.bin": 3 << 20, "big/b.bin": 1<<20 + 7, "small.json": 100, "empty": 0} {
		data := content(uint64(n), n)
		put(t, src, name, data)
		f.want[name] = md5.Sum(data)
		if n >= testCopyMin {
			f.large += int64(n)
		} else {
			f.small += int64(n)
		}
	}
	return f
}

func (f *copyFixture) repo(t *testing.T, passphrase string) *store.Repository {
	name, _ := azuriteContainer(t, f.env, "copyrepo")
	repo, err := store.Open(context.Background(), store.Options{URL: "azblob://" + name, ConnectionString: f.env.AzureConnectionString,
		Passphrase: passphrase, Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	return repo
}

func (f *copyFixture) backup(t *testing.T, repo *store.Repository, c *countedContainer) (*store.Manifest, Section) {
	t.Helper()
	src := &Source{URL: f.srcURL, Credentials: Credentials{ConnectionString: f.env.AzureConnectionString}, CopyMin: testCopyMin, Log: slog.New(slog.NewTextHandler(&c.log, nil)),
		open: func(context.Context, string, Credentials, bool) (Container, error) { return c, nil }}
	m, err := snapshot.Run(context.Background(), repo, []snapshot.Source{src}, snapshot.Options{Log: quietLog()})
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	_, sec, _ := listingOf(m)
	return m, sec
}

// restored restores m into a fresh container and returns its contents.
func (f *copyFixture) restored(t *testing.T, repo *store.Repository, m *store.Manifest) map[string][16]byte {
	t.Helper()
	name, dst := azuriteContainer(t, f.env, "copydst")
	if _, err := Restore(context.Background(), repo, m, RestoreOptions{URL: "azblob://" + name,
		Credentials: Credentials{ConnectionString: f.env.AzureConnectionString}, Log: quietLog()}); err != nil {
		t.Fatalf("restore %s: %v", m.ID, err)
	}
	return contents(t, dst)
}

func rawObjects(m *store.Manifest) map[string]store.ManifestObject {
	out := map[string]store.ManifestObject{}
	for _, o := range m.Objects {
		if o.Format == store.FormatRaw {
			out[o.Partition] = o
		}
	}
	return out
}

// TestAzuriteServerCopy: source and repository on Azure, unencrypted: the large blobs are copied
// by the storage service (no byte of them read by tracevault), restore round-trips, an unchanged
// container copies nothing, prune keeps the copied objects a kept snapshot references, and a
// copied object damaged in the repository is caught by verify and restore, naming the blob.
func TestAzuriteServerCopy(t *testing.T) {
	ctx := context.Background()
	f := newCopyFixture(t)
	repo := f.repo(t, "")
	c := &countedContainer{azureContainer: f.src}
	m1, sec := f.backup(t, repo, c)
	if sec.Copied != 2 || sec.CopiedBytes != f.large || sec.NewBlobs != 3 || sec.NewBytes != f.large+f.small {
		t.Fatalf("first backup %+v: want the 2 large blobs (%d bytes) copied, 3 new", sec, f.large)
	}
	if got := c.read.Load(); got != f.small {
		t.Fatalf("tracevault read %d bytes of the source; want only the small blob's %d", got, f.small)
	}
	raw := rawObjects(m1)
	if len(raw) != 2 || raw["big/a.bin"].MD5 != fmt.Sprintf("%x", f.want["big/a.bin"]) || raw["big/a.bin"].Size != 3<<20 {
		t.Fatalf("raw objects %+v", raw)
	}
	assertContents(t, f.restored(t, repo, m1), f.want)

	c.read.Store(0)
	m2, sec := f.backup(t, repo, c)
	if sec.NewBlobs != 0 || sec.Copied != 0 || c.read.Load() != 0 || c.copyURLs.Load() != 2 {
		t.Fatalf("unchanged container: %+v, %d bytes read, %d copy urls; want nothing new", sec, c.read.Load(), c.copyURLs.Load())
	}
	if raw2 := rawObjects(m2); len(raw2) != 2 || !raw2["big/b.bin"].Reused || raw2["big/b.bin"].ID != raw["big/b.bin"].ID {
		t.Fatalf("second snapshot's copied objects %+v: want the first's, reused and named", raw2)
	}

	if err := repo.DeleteSnapshot(ctx, m1.ID); err != nil {
		t.Fatal(err)
	}
	if rep, err := repo.Prune(ctx, store.Retention{KeepLast: 5}, false, time.Minute); err != nil || rep.ObjectsRemoved != 1 {
		t.Fatalf("prune: %+v, %v; want only the first listing removed", rep, err)
	}
	if rep, err := repo.Verify(ctx, nil, true); err != nil || len(rep.Problems) != 0 || rep.ObjectsRead != 4 {
		t.Fatalf("verify after prune: %+v, %v", rep, err)
	}
	assertContents(t, f.restored(t, repo, m2), f.want)

	// Damage: same size, other bytes. Only the MD5 can tell.
	a := raw["big/a.bin"]
	if _, err := repo.Backend().Put(ctx, a.Name(), bytes.NewReader(content(7, 3<<20))); err != nil {
		t.Fatal(err)
	}
	rep, err := repo.Verify(ctx, nil, true)
	if err != nil || len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0].What, "big/a.bin") || !strings.Contains(rep.Problems[0].Error, "md5") {
		t.Fatalf("verify of a damaged copy: %+v, %v; want one problem naming big/a.bin and its md5", rep.Problems, err)
	}
	name, _ := azuriteContainer(t, f.env, "copydmg")
	_, err = Restore(ctx, repo, m2, RestoreOptions{URL: "azblob://" + name, Credentials: Credentials{ConnectionString: f.env.AzureConnectionString}, Log: quietLog()})
	if err == nil || !strings.Contains(err.Error(), "big/a.bin") {
		t.Fatalf("restore of a damaged copy: %v; want an error naming big/a.bin", err)
	}
}

// TestAzuriteServerCopyFallback: wherever a copy cannot be made or proven, the blob is streamed
// and the snapshot is as complete as without copying.
func TestAzuriteServerCopyFallback(t *testing.T) {
	ctx := context.Background()
	f := newCopyFixture(t)
	// A Content-MD5 that is not the bytes': the service refuses the copy, and the stream
	// records the bytes' real MD5.
	forged := md5.Sum([]byte("forged"))
	if _, err := f.src.c.NewBlobClient("big/b.bin").SetHTTPHeaders(ctx, blob.HTTPHeaders{BlobContentMD5: forged[:]}, nil); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		passphrase string
		badURL     bool
		copied     int64 // large blobs copied; the others are streamed
		copyURLs   int64
		logged     string // why the copies that were tried failed
	}{
		{name: "forged md5", copied: 1, copyURLs: 2, logged: "do not hash to md5 " + fmt.Sprintf("%x", forged)},
		{name: "encrypted", passphrase: "copy-test-passphrase", copied: 0, copyURLs: 0, logged: "the repository is encrypted"},
		{name: "copy error", badURL: true, copied: 0, copyURLs: 2, logged: "the service could not read the source"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			repo := f.repo(t, tc.passphrase)
			c := &countedContainer{azureContainer: f.src, badURL: tc.badURL}
			m, sec := f.backup(t, repo, c)
			if sec.Copied != tc.copied || sec.NewBlobs != 3 || c.copyURLs.Load() != tc.copyURLs {
				t.Fatalf("%+v, %d copy urls; want %d copied of 3 new, %d tried", sec, c.copyURLs.Load(), tc.copied, tc.copyURLs)
			}
			if streamed := f.large + f.small - sec.CopiedBytes; c.read.Load() != streamed {
				t.Fatalf("tracevault read %d bytes; want the %d of the blobs not copied", c.read.Load(), streamed)
			}
			if !strings.Contains(c.log.String(), tc.logged) {
				t.Fatalf("the backup did not log %q:\n%s", tc.logged, c.log.String())
			}
			if raw := rawObjects(m); int64(len(raw)) != tc.copied {
				t.Fatalf("raw objects %v, want %d", raw, tc.copied)
			}
			assertContents(t, f.restored(t, repo, m), f.want)
		})
	}
}
