package jobs

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/lease"
	"github.com/go-zookeeper/zk"

	"github.com/tracevault/tracevault/config"
	"github.com/tracevault/tracevault/snapshot/blobs"
	"github.com/tracevault/tracevault/snapshot/store"
	"github.com/tracevault/tracevault/snapshot/zookeeper"
)

// TestAppendOnlyRepositorySurvivesItsCredential is issue 29's attack test, live on Azurite. The
// daemon's work (a full set: a scratch PostgreSQL database, a ClickHouse database of the 18.16
// cluster, a ZooKeeper subtree and a blob container; an incremental, verify --read-data and a sampled verify, a drill and its run record)
// runs with a container SAS "rcl" and [storage] append_only; prune refuses, naming the fix. Then
// an attacker holding the same SAS tries to delete, overwrite, truncate, re-upload (blocks),
// rename (copy, then delete), lease and re-tag every object the repository holds: every attempt
// is refused, every object reads as it did, and verify --read-data and a drill still pass.
func TestAppendOnlyRepositorySurvivesItsCredential(t *testing.T) {
	f := newDrillFixture(t) // seeds the scratch databases; its own file:// backup is not used
	env := f.env
	ctx := context.Background()

	sc := env.ScratchSASContainer(t, "ao", "rcl")
	name, endpoint, sas, admin := sc.Name, sc.Endpoint, sc.SAS, sc.Admin

	// A full set: ZooKeeper (a scratch subtree) and Langfuse's blob container too.
	suffix := time.Now().UnixNano() % 1e12
	srcURL := fmt.Sprintf("azblob://it-aoevents-%d", suffix)
	src, err := blobs.OpenContainer(ctx, srcURL, blobs.Credentials{ConnectionString: env.AzureConnectionString}, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteContainers(env.AzureConnectionString, srcURL) })
	for i, p := range fileLogPaths(t, f) {
		putBlob(t, src, p, []byte(fmt.Sprintf(`{"event": %d}`, i)))
	}
	// Big enough to be copied server-side (Put Block From URL) if the credential may.
	putBlob(t, src, "media/big.bin", bytes.Repeat([]byte("langfuse media "), (blobs.DefaultCopyMin+1<<20)/15))
	zkRoot := fmt.Sprintf("/it_ao_%d", suffix)
	zconn, err := zookeeper.Connect(ctx, []string{env.ZK}, 10*time.Second, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer zconn.Close()
	for _, p := range []string{zkRoot, zkRoot + "/a"} {
		if _, err := zconn.Create(p, []byte("data of "+p), 0, zk.WorldACL(zk.PermAll)); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { _ = deleteZK(zconn, zkRoot) })

	cfg := *f.cfg
	cfg.ZooKeeper.Servers, cfg.ZooKeeper.Roots, cfg.ZooKeeper.Exclude = []string{env.ZK}, []string{zkRoot}, nil
	cfg.Blobs = config.Blobs{URL: srcURL, AzureCredentials: config.AzureCredentials{ConnectionString: config.Secret(env.AzureConnectionString)}, Workers: 2, PackSize: 1 << 20}
	cfg.Storage.URL = "azblob://" + name + "/repo"
	cfg.Storage.Endpoint, cfg.Storage.SASToken, cfg.Storage.AppendOnly = endpoint, config.Secret(sas), true
	repo, err := CreateRepository(ctx, cfg.Storage, quiet)
	if err != nil {
		t.Fatalf("create the repository with an rcl SAS: %v", err)
	}

	// The daemon's work, through the append-only credential.
	full, err := Backup(ctx, &cfg, repo, BackupRequest{}, quiet)
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	if got := fmt.Sprint(full.Sources()); got != "[postgres clickhouse zookeeper blobs]" {
		t.Fatalf("sources %s; want the full set", got)
	}
	// Azurite refuses Put Block From URL with an rcl SAS (403 AuthorizationPermissionMismatch,
	// measured): the big blob is streamed into a pack instead, never copied.
	for _, o := range full.Objects {
		if o.Format == store.FormatRaw {
			t.Errorf("object %s was copied server-side through the rcl SAS, which Azurite refused until now: update the comment", o.ID)
		}
	}
	f.chExec(t, fmt.Sprintf("INSERT INTO %s.scores SELECT * FROM %s.scores LIMIT 10", f.chDB, f.chDB))
	incr, err := Backup(ctx, &cfg, repo, BackupRequest{}, quiet)
	if err != nil {
		t.Fatalf("incremental backup: %v", err)
	}
	verifyAll := func(when string) {
		t.Helper()
		rep, err := Verify(ctx, repo, VerifyRequest{ReadData: true})
		if err != nil || len(rep.Problems) > 0 || rep.Snapshots != 2 {
			t.Fatalf("verify --read-data %s: %+v, %v; want 2 snapshots without problems", when, rep, err)
		}
	}
	verifyAll("after the backups")
	for range 2 { // the sample's position advances twice: two new objects, no rewrite
		if _, err := Verify(ctx, repo, VerifyRequest{ReadData: true, Sample: store.Sample{Buckets: 2}}); err != nil {
			t.Fatalf("sampled verify: %v", err)
		}
	}
	drill := func(when string) {
		t.Helper()
		start := time.Now()
		res, err := Drill(ctx, &cfg, repo, DrillRequest{Snapshot: incr.ID}, quiet)
		if err != nil || res.Outcome != OutcomeSucceeded {
			t.Fatalf("drill %s: %+v, %v", when, res, err)
		}
		if _, err := RecordDrill(ctx, repo, res, start); err != nil {
			t.Fatalf("record the drill %s: %v", when, err)
		}
	}
	drill("after the backups")
	if _, err := Prune(ctx, repo, store.Retention{KeepLast: 1}, false, time.Second); !errors.Is(err, store.ErrAppendOnly) || !strings.Contains(err.Error(), "separate identity") {
		t.Fatalf("prune with the append-only credential: %v; want a refusal naming the separate identity", err)
	}
	if err := repo.DeleteSnapshot(ctx, full.ID); !errors.Is(err, store.ErrAppendOnly) {
		t.Fatalf("delete with the append-only credential: %v; want a refusal", err)
	}

	// What the repository holds, read with the account key: every kind must be attacked.
	before := map[string][]byte{}
	kinds := map[string]int{}
	pager := admin.NewListBlobsFlatPager(nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range page.Segment.BlobItems {
			before[*b.Name] = readBlob(t, admin, *b.Name)
			kind, _, _ := strings.Cut(strings.TrimPrefix(*b.Name, "repo/"), "/")
			kinds[kind]++
		}
	}
	for _, k := range []string{"config", "data", "snapshots", "runs", "verify", "locks"} {
		if kinds[k] == 0 {
			t.Errorf("the repository holds no %s object to attack (it holds %v)", k, kinds)
		}
	}
	t.Logf("attacking %d objects: %v", len(before), kinds)

	attacker, err := container.NewClientWithNoCredential(endpoint+"/"+name+"?"+sas, nil)
	if err != nil {
		t.Fatal(err)
	}
	refused := func(err error) bool {
		var re *azcore.ResponseError
		return errors.As(err, &re) && (re.StatusCode == 403 || re.StatusCode == 409)
	}
	garbage := []byte("encrypted by the attacker")
	attacks := []struct {
		name string
		do   func(blobName string) error
	}{
		{"delete", func(n string) error { _, err := attacker.NewBlobClient(n).Delete(ctx, nil); return err }},
		{"overwrite", func(n string) error {
			_, err := attacker.NewBlockBlobClient(n).UploadBuffer(ctx, garbage, nil)
			return err
		}},
		{"truncate", func(n string) error {
			_, err := attacker.NewBlockBlobClient(n).UploadBuffer(ctx, nil, nil)
			return err
		}},
		{"re-upload as blocks", func(n string) error {
			bb := attacker.NewBlockBlobClient(n)
			id := base64.StdEncoding.EncodeToString([]byte("attack00"))
			if _, err := bb.StageBlock(ctx, id, nopCloser{bytes.NewReader(garbage)}, nil); err != nil {
				return err
			}
			_, err := bb.CommitBlockList(ctx, []string{id}, nil)
			return err
		}},
		{"rename (copy, then delete)", func(n string) error {
			// The copy to a new name may succeed (creating is allowed); the original must stay.
			_, _ = attacker.NewBlobClient(n+".moved").StartCopyFromURL(ctx, attacker.NewBlobClient(n).URL(), nil)
			_, err := attacker.NewBlobClient(n).Delete(ctx, nil)
			return err
		}},
		{"lease", func(n string) error {
			lc, err := lease.NewBlobClient(attacker.NewBlobClient(n), nil)
			if err != nil {
				return err
			}
			_, err = lc.AcquireLease(ctx, -1, nil)
			return err
		}},
		{"set metadata", func(n string) error {
			v := "pwned"
			_, err := attacker.NewBlobClient(n).SetMetadata(ctx, map[string]*string{"x": &v}, nil)
			return err
		}},
		{"set tier", func(n string) error {
			_, err := attacker.NewBlobClient(n).SetTier(ctx, blob.AccessTierArchive, nil)
			return err
		}},
	}
	for n := range before {
		for _, a := range attacks {
			if err := a.do(n); !refused(err) {
				t.Errorf("%s of %s: %v; want it refused (403 or 409)", a.name, n, err)
			}
		}
	}
	if _, err := attacker.Delete(ctx, nil); !refused(err) {
		t.Errorf("delete of the container: %v; want it refused", err)
	}
	for n, want := range before {
		if got := readBlob(t, admin, n); !bytes.Equal(got, want) {
			t.Errorf("%s changed under the attack: %d bytes (md5 %x), was %d bytes (md5 %x)", n, len(got), md5.Sum(got), len(want), md5.Sum(want))
		}
	}

	verifyAll("after the attack")
	drill("after the attack")

	// The separate identity that may delete (the account key, no append_only) prunes by policy;
	// the kept snapshot still verifies and drills.
	pcfg := cfg
	pcfg.Storage.SASToken, pcfg.Storage.Endpoint, pcfg.Storage.AppendOnly = "", "", false
	pcfg.Storage.ConnectionString = config.Secret(env.AzureConnectionString)
	pruner, err := OpenRepository(ctx, pcfg.Storage, quiet)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Prune(ctx, pruner, store.Retention{KeepLast: 1}, false, time.Minute)
	if err != nil || len(rep.Forgotten) != 1 || rep.Forgotten[0] != full.ID {
		t.Fatalf("prune by the separate identity: %+v, %v; want %s forgotten", rep, err, full.ID)
	}
	vrep, err := Verify(ctx, pruner, VerifyRequest{ReadData: true})
	if err != nil || len(vrep.Problems) > 0 || vrep.Snapshots != 1 {
		t.Fatalf("verify --read-data after prune: %+v, %v; want the kept snapshot whole", vrep, err)
	}
	drill("after prune")
}

func readBlob(t *testing.T, c *container.Client, name string) []byte {
	t.Helper()
	resp, err := c.NewBlobClient(name).DownloadStream(context.Background(), nil)
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return b
}

type nopCloser struct{ io.ReadSeeker }

func (nopCloser) Close() error { return nil }
