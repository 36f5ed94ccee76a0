package blobs

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/tracevault/tracevault/snapshot/store"
)

// azureContainer is an Azure container under an optional prefix, reached with the store's
// client (same credentials, retries and secret scrubbing as the repository).
type azureContainer struct {
	a      *store.Azure
	c      *container.Client
	name   string
	prefix string // "" or ending in "/"
}

func openAzure(ctx context.Context, name, prefix string, cred Credentials, create bool) (*azureContainer, error) {
	a, err := store.NewAzure(ctx, storeAzure(name, cred, create))
	if err != nil {
		return nil, err
	}
	if prefix != "" {
		prefix += "/"
	}
	return &azureContainer{a: a, c: a.Container(), name: name, prefix: prefix}, nil
}

func (z *azureContainer) String() string {
	return "azblob://" + z.name + "/" + strings.TrimSuffix(z.prefix, "/")
}

// List pages through the container; Azure lists blobs in name order.
func (z *azureContainer) List(ctx context.Context, fn func(Entry) error) error {
	opts := &container.ListBlobsFlatOptions{MaxResults: ptr(int32(5000))}
	if z.prefix != "" {
		opts.Prefix = &z.prefix
	}
	pager := z.c.NewListBlobsFlatPager(opts)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return z.a.Scrub(fmt.Errorf("list %s: %w", z, err))
		}
		for _, b := range page.Segment.BlobItems {
			if b.Name == nil || b.Properties == nil {
				continue
			}
			e := Entry{Name: strings.TrimPrefix(*b.Name, z.prefix), MD5: b.Properties.ContentMD5}
			if p := b.Properties; p.ContentLength != nil {
				e.Size = *p.ContentLength
			}
			if p := b.Properties; p.ETag != nil {
				e.ETag = etag(*p.ETag)
			}
			if p := b.Properties; p.LastModified != nil {
				e.Modified = p.LastModified.UTC()
			}
			if err := fn(e); err != nil {
				return err
			}
		}
	}
	return nil
}

func (z *azureContainer) Open(ctx context.Context, name string) (io.ReadCloser, Entry, error) {
	resp, err := z.c.NewBlobClient(z.prefix+name).DownloadStream(ctx, nil)
	if bloberror.HasCode(err, bloberror.BlobNotFound) {
		err = fmt.Errorf("%w: %w", store.ErrNotFound, err)
	}
	if err != nil {
		return nil, Entry{}, z.a.Scrub(fmt.Errorf("read %s from %s: %w", name, z, err))
	}
	e := Entry{Name: name, MD5: resp.ContentMD5}
	if resp.ContentLength != nil {
		e.Size = *resp.ContentLength
	}
	if resp.ETag != nil {
		e.ETag = etag(*resp.ETag)
	}
	if resp.LastModified != nil {
		e.Modified = resp.LastModified.UTC()
	}
	return resp.NewRetryReader(ctx, &blob.RetryReaderOptions{MaxRetries: 5}), e, nil
}

// Put uploads in blocks and commits only after the body hashed to md5, which it records as the
// blob's Content-MD5 (Azure does not compute one for a blob committed from blocks).
func (z *azureContainer) Put(ctx context.Context, name string, size int64, md5 []byte, r io.Reader) error {
	src := &store.UploadSource{R: checked(r, name, size, md5)}
	_, err := z.c.NewBlockBlobClient(z.prefix+name).UploadStream(ctx, src, &blockblob.UploadStreamOptions{
		BlockSize: 4 << 20, Concurrency: 2,
		HTTPHeaders: &blob.HTTPHeaders{BlobContentMD5: md5},
	})
	if err = src.Failed(err); err != nil {
		return z.a.Scrub(fmt.Errorf("write %s to %s: %w", name, z, err))
	}
	return nil
}

// etag is an ETag without the quotes a download's header has and a listing's XML may not.
func etag(e azcore.ETag) string { return strings.Trim(string(e), `"`) }

func ptr[T any](v T) *T { return &v }
