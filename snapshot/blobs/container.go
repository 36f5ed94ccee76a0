package blobs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/tracevault/tracevault/snapshot/store"
)

// Entry is a blob as its container lists it. MD5 is nil where the container does not know it
// (a directory, or an Azure blob uploaded in blocks without a Content-MD5).
type Entry struct {
	Name     string
	Size     int64
	MD5      []byte
	ETag     string
	Modified time.Time
}

// Container is a blob container: an Azure container (under a prefix) or a directory.
type Container interface {
	// List calls fn for every blob in increasing name order.
	List(ctx context.Context, fn func(Entry) error) error
	// Open reads a blob whole and says what it read (its ETag and modification time may be
	// newer than the listing's).
	Open(ctx context.Context, name string) (io.ReadCloser, Entry, error)
	// Put writes a blob of size bytes whose MD5 must be md5: a body that does not hash to it is
	// never committed, so a damaged restore leaves the old blob (or none) in place.
	Put(ctx context.Context, name string, size int64, md5 []byte, r io.Reader) error
	// String names the container for messages, without secrets.
	String() string
}

// Credentials are the Azure keys, as in [storage]: at most one of ConnectionString, AccountKey
// or SASToken; none means the default credential chain.
type Credentials struct {
	ConnectionString, AccountName, AccountKey, SASToken, Endpoint string
}

// OpenContainer opens the container at rawURL: azblob://container[/prefix] or file:///dir.
// create makes a missing container or directory (a restore target); a backup source must exist.
func OpenContainer(ctx context.Context, rawURL string, cred Credentials, create bool) (Container, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("blob url %q: %w", rawURL, err)
	}
	switch u.Scheme {
	case "file":
		if u.Host != "" || !strings.HasPrefix(u.Path, "/") {
			return nil, fmt.Errorf("blob url %q: write file:///absolute/dir", rawURL)
		}
		return openDir(u.Path, create)
	case "azblob":
		return openAzure(ctx, u.Host, strings.Trim(u.Path, "/"), cred, create)
	default:
		return nil, fmt.Errorf("blob url %q: use azblob://container[/prefix] or file:///absolute/dir", rawURL)
	}
}

// ErrChanged means a blob's content did not match what the listing or the snapshot says.
var ErrChanged = errors.New("blob content does not match its MD5")

// storeAzure maps credentials to the store's Azure options, so both containers authenticate
// the same way.
func storeAzure(containerName string, c Credentials, create bool) store.AzureOptions {
	return store.AzureOptions{Container: containerName, ConnectionString: c.ConnectionString, AccountName: c.AccountName,
		AccountKey: c.AccountKey, SASToken: c.SASToken, Endpoint: c.Endpoint, NoCreate: !create}
}

// Deleter is a container whose blobs can be deleted: a migration's target container loses the
// blobs it was given that the source no longer has. A missing blob is no error.
type Deleter interface {
	Delete(ctx context.Context, name string) error
}

// Delete removes a blob.
func (z *azureContainer) Delete(ctx context.Context, name string) error {
	return z.a.Delete(ctx, z.prefix+name)
}

// Delete removes a blob's file.
func (d *dir) Delete(ctx context.Context, name string) error {
	if err := d.unfit(name); err != nil {
		return err
	}
	return d.fs.Delete(ctx, name)
}
