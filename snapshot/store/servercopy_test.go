package store

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"

	"github.com/tracevault/tracevault/internal/devstack"
)

func TestObjectRefForms(t *testing.T) {
	sha := strings.Repeat("ab", 32)
	sum := strings.Repeat("cd", 16)
	for _, tc := range []struct {
		name string
		ref  ObjectRef
		ok   bool
	}{
		{"codec", ObjectRef{SHA256: sha, Size: 10, RawSize: 30}, true},
		{"codec without sha256", ObjectRef{Size: 10, RawSize: 30}, false},
		{"codec with an md5", ObjectRef{SHA256: sha, MD5: sum, Size: 10, RawSize: 30}, false},
		{"raw", ObjectRef{Format: FormatRaw, MD5: sum, Size: 10, RawSize: 10}, true},
		{"raw without md5", ObjectRef{Format: FormatRaw, Size: 10, RawSize: 10}, false},
		{"raw md5 in capitals", ObjectRef{Format: FormatRaw, MD5: strings.ToUpper(sum), Size: 10, RawSize: 10}, false},
		{"raw with a sha256", ObjectRef{Format: FormatRaw, MD5: sum, SHA256: sha, Size: 10, RawSize: 10}, false},
		{"raw sizes differ", ObjectRef{Format: FormatRaw, MD5: sum, Size: 10, RawSize: 11}, false},
		{"unknown format", ObjectRef{Format: "zip", SHA256: sha, Size: 10, RawSize: 30}, false},
	} {
		if err := tc.ref.checkForm(); (err == nil) != tc.ok {
			t.Errorf("%s: %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

// TestServerCopy: a directory has no server-side copy; on Azurite an object copied from a URL
// reads back checked by its MD5, and a source whose bytes do not hash to the claimed MD5 leaves
// no object behind.
func TestServerCopy(t *testing.T) {
	ctx := context.Background()
	fs := openRepo(t, backendCases[0].open(t, AzureOptions{}), Options{})
	if err := fs.ServerCopy(); !errors.Is(err, ErrNoServerCopy) {
		t.Fatalf("a directory repository: %v, want ErrNoServerCopy", err)
	}
	if _, err := fs.CopyObject(ctx, "", CopySource{URL: "http://x", Size: 1, MD5: make([]byte, 16)}); !errors.Is(err, ErrNoServerCopy) {
		t.Fatalf("copy into a directory: %v, want ErrNoServerCopy", err)
	}

	b := openAzurite(t, AzureOptions{}).(*Azure)
	repo := openRepo(t, b, Options{})
	data := testData(3<<20+5, 1)
	if _, err := b.Put(ctx, "source/blob", bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	sum := md5.Sum(data)
	// The source's credentials, each of which yields a URL the service can read: the connection
	// string's and the account key's sign a service SAS, a configured SAS is used as is.
	env := devstack.Require(t)
	field := func(k string) string {
		return regexp.MustCompile(k + `=([^;]+)`).FindStringSubmatch(env.AzureConnectionString)[1]
	}
	account, key, endpoint := field("AccountName"), field("AccountKey"), field("BlobEndpoint")
	cred, err := azblob.NewSharedKeyCredential(account, key)
	if err != nil {
		t.Fatal(err)
	}
	qp, err := sas.BlobSignatureValues{Protocol: sas.ProtocolHTTPSandHTTP, ExpiryTime: time.Now().Add(time.Hour),
		ContainerName: b.opts.Container, Permissions: (&sas.ContainerPermissions{Read: true, List: true}).String()}.SignWithSharedKey(cred)
	if err != nil {
		t.Fatal(err)
	}
	sources := map[string]*Azure{"connection string": b}
	for name, o := range map[string]AzureOptions{"account key": {AccountKey: key}, "read-only sas": {SASToken: qp.Encode()}} {
		o.AccountName, o.Endpoint, o.Container, o.Prefix, o.NoCreate = account, endpoint, b.opts.Container, "repo", true
		if sources[name], err = NewAzure(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	var ref ObjectRef
	for name, src := range sources {
		u, err := src.ReadURL(ctx, "source/blob", time.Hour)
		if err != nil || !strings.Contains(u, "sig=") {
			t.Fatalf("%s: read url: %q, %v", name, u, err)
		}
		if ref, err = repo.CopyObject(ctx, "fp", CopySource{URL: u, Size: int64(len(data)), MD5: sum[:]}); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if ref.Format != FormatRaw || ref.MD5 != hex.EncodeToString(sum[:]) || ref.Size != int64(len(data)) {
			t.Fatalf("%s: copied %+v", name, ref)
		}
		if got := reader(t)(repo.OpenObject(ctx, ref)); !bytes.Equal(got, data) {
			t.Fatalf("%s: read back %d bytes, want the %d copied", name, len(got), len(data))
		}
	}
	if again, reused, err := repo.PutObject(ctx, "fp", nil); err != nil || !reused || again.ID != ref.ID {
		t.Fatalf("the copy is not found by its fingerprint: %+v %v %v", again, reused, err)
	}

	wrong := md5.Sum([]byte("not the content"))
	u, _ := b.ReadURL(ctx, "source/blob", time.Hour)
	_, err = repo.CopyObject(ctx, "", CopySource{URL: u, Size: int64(len(data)), MD5: wrong[:]})
	if err == nil || !strings.Contains(err.Error(), "do not hash to md5") || strings.Contains(err.Error(), "sig=") {
		t.Fatalf("copy under a wrong md5: %v; want the MD5 check's failure, without the SAS", err)
	}
	n := 0
	_ = b.List(ctx, "data/", func(ObjectInfo) error { n++; return nil })
	if n != len(sources) {
		t.Fatalf("%d objects after a failed copy, want only the %d good ones", n, len(sources))
	}

	// Damaged in place: the MD5 catches it at the end of the read.
	if _, err := b.Put(ctx, ref.Name(), bytes.NewReader(testData(len(data), 2))); err != nil {
		t.Fatal(err)
	}
	rc, err := repo.OpenObject(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := io.Copy(io.Discard, rc); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("reading a damaged copy: %v, want ErrCorrupt", err)
	}
}
