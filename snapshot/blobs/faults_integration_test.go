package blobs

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/tracevault/tracevault/internal/devstack"
	"github.com/tracevault/tracevault/internal/faultproxy"
	"github.com/tracevault/tracevault/snapshot"
	"github.com/tracevault/tracevault/snapshot/store"
)

// tripwire is a container that calls fire when the blob named name is read: the fault begins
// in the middle of a backup, with packs on their way to the repository.
type tripwire struct {
	Container
	name string
	fire func()
}

func (c tripwire) Open(ctx context.Context, name string) (io.ReadCloser, Entry, error) {
	if name == c.name {
		c.fire()
	}
	return c.Container.Open(ctx, name)
}

// TestAzuriteFaults backs up an Azure container with each fault kind held for a few seconds, from
// the start of the backup or from the middle of its reads and uploads, on either side of it: the
// repository reached through the chaos proxy, or the container (Langfuse's own storage account
// misbehaving). A repository fault may fail the backup, which must then name the repository and
// its error and never be listed complete; a container fault must be ridden out (the container is
// read with the SDK's default retries and a retrying body reader) and every blob's MD5 restored.
// Either way the next backup without faults completes and reads only the blobs changed since the
// last complete one.
func TestAzuriteFaults(t *testing.T) {
	env := devstack.Require(t)
	proxy, proxied, err := faultproxy.ListenAzure(env.AzureConnectionString, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	// Short, so that a fault of a few seconds outlasts the retries (the default policy rides
	// out about a minute and a half of them).
	retry := policy.RetryOptions{MaxRetries: 1, RetryDelay: 100 * time.Millisecond, MaxRetryDelay: 500 * time.Millisecond, TryTimeout: 1500 * time.Millisecond}
	cred := Credentials{ConnectionString: env.AzureConnectionString}
	for _, fault := range []struct {
		name  string
		mode  faultproxy.Mode
		cause []string // one of them, or of resets, is in the error of a failed backup
	}{
		{"503", faultproxy.Mode{Fault: faultproxy.Unavailable}, []string{"503", "ServerBusy"}},
		{"reset", faultproxy.Mode{Fault: faultproxy.Reset, After: 16 << 10}, nil},
		{"stall", faultproxy.Mode{Fault: faultproxy.Stall, Stall: 5 * time.Second}, []string{"deadline", "timeout", "Timeout"}},
		{"slow bodies", faultproxy.Mode{Fault: faultproxy.Throttle, BytesPerSecond: 16 << 10}, []string{"deadline", "timeout", "Timeout"}},
	} {
		// Every fault starts by resetting the connections open at its start: a request in
		// flight then meets a reset whatever the fault (a writer whose connection the
		// transport closed under it says "use of closed network connection").
		fault.cause = append(fault.cause, "reset", "EOF", "broken pipe", "use of closed network connection")
		for _, side := range []string{"repository", "container"} {
			for _, mid := range []bool{false, true} {
				when := map[bool]string{false: "from the start", true: "mid-backup"}[mid]
				t.Run(side+" "+fault.name+" "+when, func(t *testing.T) {
					ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
					defer cancel()
					proxy.Set(faultproxy.Mode{Fault: faultproxy.Pass})
					srcName, src := azuriteContainer(t, env, "blobfsrc")
					repoName, _ := azuriteContainer(t, env, "blobfrepo")
					b, err := store.NewAzure(ctx, store.AzureOptions{ConnectionString: proxied, Container: repoName, Retry: retry})
					if err != nil {
						t.Fatal(err)
					}
					faulty, err := store.OpenBackend(ctx, b, store.Options{Log: quietLog()})
					if err != nil {
						t.Fatal(err)
					}
					direct := azuriteRepo(t, env, repoName)
					for i := range 60 {
						put(t, src, fmt.Sprintf("media/%03d", i), content(uint64(i), 1000+i*300))
					}
					for i := range 3 {
						put(t, src, fmt.Sprintf("video/%d", i), content(uint64(100+i), 1<<20))
					}
					s := scenario{src: src, srcURL: "azblob://" + srcName, cred: cred, repo: faulty, packSize: 1 << 20, workers: 2}
					first, _ := backup(t, s)

					// Changed since: 5 small and 2 large rewritten, 3 new.
					changed := 0
					for _, i := range []int{3, 17, 29, 41, 58} {
						put(t, src, fmt.Sprintf("media/%03d", i), content(uint64(1000+i), 2000))
						changed++
					}
					for i := range 2 {
						put(t, src, fmt.Sprintf("video/%d", i), content(uint64(200+i), 1<<20))
						changed++
					}
					for i := range 3 {
						put(t, src, fmt.Sprintf("new/%d", i), content(uint64(300+i), 50_000))
						changed++
					}
					want := contents(t, src)

					var once sync.Once
					healed := make(chan struct{})
					inject := func() {
						once.Do(func() {
							proxy.Set(fault.mode)
							time.AfterFunc(4*time.Second, func() { proxy.Set(faultproxy.Mode{Fault: faultproxy.Pass}); close(healed) })
						})
					}
					if !mid {
						inject()
					}
					// The side under the fault is reached through the proxy, the other directly.
					underFault, srcCred := faulty, cred
					if side == "container" {
						underFault, srcCred = direct, Credentials{ConnectionString: proxied}
					}
					src2 := &Source{URL: s.srcURL, Credentials: srcCred, PackSize: 1 << 20, Workers: 2, Log: quietLog(),
						open: func(ctx context.Context, url string, cred Credentials, create bool) (Container, error) {
							c, err := OpenContainer(ctx, url, cred, create)
							// video/1 changed: it is read after the first packs have started.
							return tripwire{Container: c, name: "video/1", fire: inject}, err
						}}
					m, err := snapshot.Run(ctx, underFault, []snapshot.Source{src2}, snapshot.Options{Log: quietLog(), LockWait: time.Minute})
					inject() // had the backup failed before reading video/1
					<-healed

					var id string
					if m != nil {
						id = m.ID
					}
					if err == nil {
						t.Logf("%s %s %s: the backup completed: %s", side, fault.name, when, id)
						restoreAll(t, direct, id, want)
					} else {
						t.Logf("%s %s %s: the backup failed: %.300s", side, fault.name, when, err)
						if side == "container" {
							t.Errorf("a fault of 4 s on the container failed the backup; the source's retries should ride it out")
						}
						if !strings.Contains(err.Error(), "azblob://"+repoName) || !containsAny(err.Error(), fault.cause) {
							t.Errorf("the failure does not name the repository azblob://%s and one of %q: %v", repoName, fault.cause, err)
						}
					}
					snaps, lerr := direct.Snapshots(ctx)
					if lerr != nil {
						t.Fatal(lerr)
					}
					for _, sm := range snaps {
						if sm.Status == store.StatusComplete && sm.ID != first.ID && (err != nil || sm.ID != id) {
							t.Errorf("snapshot %s is listed complete, but the backup under the fault failed: %v", sm.ID, err)
						}
					}

					last, sec := backup(t, s)
					wantNew, wantBase := int64(changed), first.ID
					if err == nil {
						wantNew, wantBase = 0, id
					}
					if sec.NewBlobs != wantNew || sec.Base != wantBase {
						t.Errorf("the backup after the fault read %d blobs against base %s; want %d against %s", sec.NewBlobs, sec.Base, wantNew, wantBase)
					}
					restoreAll(t, direct, last.ID, want)
				})
			}
		}
	}
}

// restoreAll restores snapshot id into a new directory and checks every blob's MD5.
func restoreAll(t *testing.T, repo *store.Repository, id string, want map[string][16]byte) {
	t.Helper()
	ctx := context.Background()
	m, err := repo.Snapshot(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if _, err := Restore(ctx, repo, m, RestoreOptions{URL: "file://" + dir, Log: quietLog()}); err != nil {
		t.Fatalf("restore %s: %v", id, err)
	}
	d, err := OpenContainer(ctx, "file://"+dir, Credentials{}, false)
	if err != nil {
		t.Fatal(err)
	}
	assertContents(t, contents(t, d), want)
}

func containsAny(s string, words []string) bool {
	for _, w := range words {
		if strings.Contains(s, w) {
			return true
		}
	}
	return false
}
