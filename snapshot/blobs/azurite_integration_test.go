package blobs

import (
	"bytes"
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"

	"github.com/tracevault/tracevault/internal/devstack"
	"github.com/tracevault/tracevault/snapshot/store"
)

// azuriteContainer makes a fresh container on the stack's Azurite, removed when the test ends.
func azuriteContainer(t testing.TB, env *devstack.Env, prefix string) (string, *azureContainer) {
	t.Helper()
	name := fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano()%1e12)
	c, err := OpenContainer(context.Background(), "azblob://"+name, Credentials{ConnectionString: env.AzureConnectionString}, true)
	if err != nil {
		t.Fatal(err)
	}
	az := c.(*azureContainer)
	t.Cleanup(func() { _, _ = az.c.Delete(context.Background(), nil) })
	return name, az
}

// azuriteRepo opens the repository in the stack's Azurite container name.
func azuriteRepo(t testing.TB, env *devstack.Env, name string) *store.Repository {
	t.Helper()
	repo, err := store.Open(context.Background(), store.Options{URL: "azblob://" + name, ConnectionString: env.AzureConnectionString, Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	return repo
}

// TestAzuriteRoundTrip backs up a second container on Azurite into an Azure repository, then
// restores into a third container, into a directory and into the source itself.
func TestAzuriteRoundTrip(t *testing.T) {
	env := devstack.Require(t)
	cred := Credentials{ConnectionString: env.AzureConnectionString}
	srcName, src := azuriteContainer(t, env, "blobsrc")
	repoName, _ := azuriteContainer(t, env, "blobrepo")
	dstName, _ := azuriteContainer(t, env, "blobdst")
	repo := azuriteRepo(t, env, repoName)
	scenario{src: src, srcURL: "azblob://" + srcName, cred: cred, repo: repo,
		targets: []string{"azblob://" + dstName + "/restored", "file://" + t.TempDir()}}.run(t)
}

// TestAzuriteWithoutMD5 covers blobs committed from blocks without a Content-MD5, as some
// uploaders leave them: unchanged ones are matched by ETag, and a rewrite is read again.
func TestAzuriteWithoutMD5(t *testing.T) {
	env := devstack.Require(t)
	ctx := context.Background()
	srcName, src := azuriteContainer(t, env, "blobnomd5")
	repo, err := store.Open(ctx, store.Options{URL: "file://" + t.TempDir(), Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	upload := func(name string, data []byte) {
		_, err := src.c.NewBlockBlobClient(name).UploadStream(ctx, bytes.NewReader(data), &blockblob.UploadStreamOptions{BlockSize: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
	}
	upload("big.bin", content(1, 3<<20))
	upload("small.bin", content(2, 10))
	var md5Listed bool
	_ = src.List(ctx, func(e Entry) error { md5Listed = md5Listed || (e.Name == "big.bin" && e.MD5 != nil); return nil })
	s := scenario{src: src, srcURL: "azblob://" + srcName, cred: Credentials{ConnectionString: env.AzureConnectionString}, repo: repo}
	_, first := backup(t, s)
	_, again := backup(t, s)
	if first.NewBlobs != 2 || again.NewBlobs != 0 {
		t.Fatalf("first %+v, again %+v: want 2 then 0 blobs read (big.bin listed with md5: %v)", first, again, md5Listed)
	}
	upload("big.bin", content(3, 3<<20)) // same size, new content: only the ETag tells
	_, third := backup(t, s)
	if third.NewBlobs != 1 || third.NewBytes != 3<<20 {
		t.Fatalf("after a same-size rewrite: %+v; want big.bin read again", third)
	}
	m, _ := backup(t, s)
	dir := t.TempDir()
	if _, err := Restore(ctx, repo, m, RestoreOptions{URL: "file://" + dir, Log: quietLog()}); err != nil {
		t.Fatal(err)
	}
	d, _ := OpenContainer(ctx, "file://"+dir, Credentials{}, false)
	got := contents(t, d)
	if got["big.bin"] != md5.Sum(content(3, 3<<20)) || len(got) != 2 || !strings.HasPrefix(m.ID, "20") {
		t.Fatalf("restored %v", got)
	}
}

// TestAzuriteForgedContentMD5: a writer who rewrites a blob and sets its Content-MD5 back to the
// old value changes its ETag; the backup reads it again, and a restore does not take the forged
// property for the snapshot's content.
func TestAzuriteForgedContentMD5(t *testing.T) {
	env := devstack.Require(t)
	ctx := context.Background()
	srcName, src := azuriteContainer(t, env, "blobforged")
	repo, err := store.Open(ctx, store.Options{URL: "file://" + t.TempDir(), Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	original := content(1, 4096)
	put(t, src, "media/x.png", original)
	s := scenario{src: src, srcURL: "azblob://" + srcName, cred: Credentials{ConnectionString: env.AzureConnectionString}, repo: repo}
	m1, _ := backup(t, s)

	forged := md5.Sum(original)
	bc := src.c.NewBlockBlobClient("media/x.png")
	if _, err := bc.UploadBuffer(ctx, content(2, 4096), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := bc.SetHTTPHeaders(ctx, blob.HTTPHeaders{BlobContentMD5: forged[:]}, nil); err != nil {
		t.Fatal(err)
	}
	if _, sec := backup(t, s); sec.NewBlobs != 1 {
		t.Fatalf("a rewrite under a forged Content-MD5 was not read: %+v", sec)
	}
	rep, err := Restore(ctx, repo, m1, RestoreOptions{Credentials: s.cred, Replace: true, Log: quietLog()})
	if err != nil || rep.Identical != 0 || rep.Written != 1 {
		t.Fatalf("restore over the forged blob: %+v, %v", rep, err)
	}
	if got := contents(t, src)["media/x.png"]; got != md5.Sum(original) {
		t.Fatalf("after the restore media/x.png has md5 %x", got)
	}
}

// TestAzuriteNamesADirectoryCannotHold backs up a container whose blob names Azure keeps
// literally but a path would resolve elsewhere ("p/../x" is not "x"). Restored into another
// container under a prefix, every name comes back as it was and nothing lands outside the
// prefix; into a directory, those blobs are left out and named, the restore fails, and the
// blobs they would have landed on keep their own content.
func TestAzuriteNamesADirectoryCannotHold(t *testing.T) {
	env := devstack.Require(t)
	ctx := context.Background()
	cred := Credentials{ConnectionString: env.AzureConnectionString}
	srcName, src := azuriteContainer(t, env, "blobnames")
	repoName, _ := azuriteContainer(t, env, "blobnamesrepo")
	dstName, dst := azuriteContainer(t, env, "blobnamesdst")
	repo := azuriteRepo(t, env, repoName)
	fit := []string{"x", "z", "lead", "p/w", "trail", "q/ok"}
	unfit := []string{"p/../x", "./z", "/lead", "p//w", "trail/", "p/..", "q/.tmp-1"}
	for i, name := range append(slices.Clone(fit), unfit...) {
		put(t, src, name, content(uint64(i), 100+i))
	}
	want := contents(t, src)
	if len(want) != len(fit)+len(unfit) {
		t.Fatalf("the container holds %d blobs, want %d distinct names", len(want), len(fit)+len(unfit))
	}
	m, _ := backup(t, scenario{src: src, srcURL: "azblob://" + srcName, cred: cred, repo: repo})

	if _, err := Restore(ctx, repo, m, RestoreOptions{URL: "azblob://" + dstName + "/restored", Credentials: cred, Log: quietLog()}); err != nil {
		t.Fatalf("restore into a container: %v", err)
	}
	var outside []string
	if err := (&azureContainer{a: dst.a, c: dst.c, name: dstName}).List(ctx, func(e Entry) error {
		if !strings.HasPrefix(e.Name, "restored/") {
			outside = append(outside, e.Name)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(outside) > 0 {
		t.Fatalf("restore wrote outside its prefix: %q", outside)
	}
	under, err := OpenContainer(ctx, "azblob://"+dstName+"/restored", cred, false)
	if err != nil {
		t.Fatal(err)
	}
	assertContents(t, contents(t, under), want)

	parent := t.TempDir()
	target := parent + "/restored"
	rep, err := Restore(ctx, repo, m, RestoreOptions{URL: "file://" + target, Log: quietLog()})
	if !errors.Is(err, errUnfitName) || rep.Unfit != int64(len(unfit)) || rep.Written != int64(len(fit)) {
		t.Fatalf("restore into a directory: %+v, %v; want %d left out and named, %d written", rep, err, len(unfit), len(fit))
	}
	for _, name := range unfit[:3] {
		if !strings.Contains(err.Error(), strconv.Quote(name)) {
			t.Errorf("the error does not name %q: %v", name, err)
		}
	}
	d, err := OpenContainer(ctx, "file://"+target, Credentials{}, false)
	if err != nil {
		t.Fatal(err)
	}
	got := contents(t, d)
	for _, name := range unfit {
		delete(want, name)
	}
	assertContents(t, got, want)
	if ents, err := os.ReadDir(parent); err != nil || len(ents) != 1 {
		t.Fatalf("the directory's parent holds %v (%v); want only the target", ents, err)
	}
}
