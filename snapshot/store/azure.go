package store

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/lease"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"
)

// AzureOptions configure the Azure Blob backend.
type AzureOptions struct {
	Container, Prefix string
	// At most one of ConnectionString, AccountKey or SASToken; none means azidentity's default
	// credential chain (managed identity, workload identity, environment, Azure CLI).
	ConnectionString, AccountName, AccountKey, SASToken string
	Endpoint                                            string // e.g. Azurite's http://127.0.0.1:10000/devstoreaccount1
	BlockSize                                           int64
	Concurrency                                         int
	// Retry overrides the retry policy; tests shorten it. Zero values take the defaults below.
	Retry policy.RetryOptions
	// Transport overrides the HTTP client, e.g. to go through a fault-injecting proxy.
	Transport policy.Transporter
	// NoCreate leaves a missing container missing: a command that only reads, pointed at a
	// mistyped container, must say there is no repository rather than leave an empty one behind.
	NoCreate bool
}

// Azure is the Azure Blob Storage backend: block blobs, uploaded as staged blocks in parallel
// and committed at the end, which is what makes Put atomic.
type Azure struct {
	c       *container.Client
	opts    AzureOptions
	prefix  string
	secrets secrets
	// token is the default chain's credential, nil with a key or SAS: it signs user-delegation
	// SAS URLs for server-side copies (ReadURL).
	token     azcore.TokenCredential
	delegated delegationKey
}

// NewAzure connects to a container, creating it if missing unless o.NoCreate.
func NewAzure(ctx context.Context, o AzureOptions) (*Azure, error) {
	if o.BlockSize == 0 {
		o.BlockSize = 8 << 20
	}
	if o.Concurrency == 0 {
		o.Concurrency = 4
	}
	// Throttling (429, 503 ServerBusy), timeouts and resets are retried by the SDK with
	// exponential backoff; its default status list already holds 408, 429, 500, 502-504.
	if o.Retry.MaxRetries == 0 {
		o.Retry.MaxRetries = 8
	}
	if o.Retry.TryTimeout == 0 {
		o.Retry.TryTimeout = 5 * time.Minute
	}
	if o.Retry.RetryDelay == 0 {
		o.Retry.RetryDelay = 500 * time.Millisecond
	}
	if o.Retry.MaxRetryDelay == 0 {
		o.Retry.MaxRetryDelay = 30 * time.Second
	}
	copts := &container.ClientOptions{ClientOptions: azcore.ClientOptions{Retry: o.Retry, Transport: o.Transport}}
	secrets := secretsOf(o)
	c, token, err := newContainerClient(o, copts)
	if err != nil {
		return nil, secrets.scrub(err)
	}
	a := &Azure{c: c, opts: o, prefix: strings.Trim(o.Prefix, "/"), secrets: secrets, token: token}
	if a.prefix != "" {
		a.prefix += "/"
	}
	// A SAS scoped to the container may not create it (AuthorizationPermissionMismatch): it exists
	// then, or the first operation says that it does not.
	if o.NoCreate {
		return a, nil
	}
	if _, err := c.Create(ctx, nil); err != nil && !bloberror.HasCode(err, bloberror.ContainerAlreadyExists, bloberror.AuthorizationPermissionMismatch) {
		return nil, a.scrub(fmt.Errorf("open %s: create container: %w", a, err))
	}
	return a, nil
}

func newContainerClient(o AzureOptions, copts *container.ClientOptions) (*container.Client, azcore.TokenCredential, error) {
	if o.ConnectionString != "" {
		c, err := container.NewClientFromConnectionString(o.ConnectionString, o.Container, copts)
		if err != nil {
			return nil, nil, fmt.Errorf("azure connection string: %w", errors.New("malformed; expect DefaultEndpointsProtocol=...;AccountName=...;AccountKey=...;BlobEndpoint=..."))
		}
		return c, nil, nil
	}
	url := azureEndpoint(o) + "/" + o.Container
	switch {
	case o.AccountKey != "":
		cred, err := azblob.NewSharedKeyCredential(o.AccountName, o.AccountKey)
		if err != nil {
			return nil, nil, fmt.Errorf("azure account key for %s: %w", o.AccountName, err)
		}
		c, err := container.NewClientWithSharedKeyCredential(url, cred, copts)
		return c, nil, err
	case o.SASToken != "":
		c, err := container.NewClientWithNoCredential(url+"?"+strings.TrimPrefix(o.SASToken, "?"), copts)
		return c, nil, err
	default:
		cred, err := azidentity.NewDefaultAzureCredential(nil)
		if err != nil {
			return nil, nil, fmt.Errorf("azure default credential (managed or workload identity): %w", err)
		}
		c, err := container.NewClient(url, cred, copts)
		return c, cred, err
	}
}

// azureEndpoint is the account's blob endpoint, without a trailing slash.
func azureEndpoint(o AzureOptions) string {
	if e := strings.TrimSuffix(o.Endpoint, "/"); e != "" {
		return e
	}
	return fmt.Sprintf("https://%s.blob.core.windows.net", o.AccountName)
}

// Container is the backend's container client, for the blob source, which reads properties
// (Content-MD5, ETag) the Backend interface does not carry.
func (a *Azure) Container() *container.Client { return a.c }

// Scrub removes every credential from err's text, as the backend's own errors are.
func (a *Azure) Scrub(err error) error { return a.scrub(err) }

func (a *Azure) String() string {
	return "azblob://" + a.opts.Container + "/" + strings.TrimSuffix(a.prefix, "/")
}

func (a *Azure) blob(name string) string { return a.prefix + name }

func (a *Azure) Put(ctx context.Context, name string, r io.Reader) (int64, error) {
	cr := &UploadSource{R: r}
	_, err := a.c.NewBlockBlobClient(a.blob(name)).UploadStream(ctx, cr, &blockblob.UploadStreamOptions{
		BlockSize: a.opts.BlockSize, Concurrency: a.opts.Concurrency,
	})
	if err = cr.Failed(err); err != nil {
		return cr.N, a.scrub(fmt.Errorf("put %s to %s: %w", name, a, err))
	}
	return cr.N, nil
}

// Create uploads as Put does with If-None-Match: *, which Azure checks when the block list is
// committed: a blob that exists then is left alone and the upload fails. A retried commit whose
// first attempt landed fails the same way; callers that can tell their own object (a record's
// content) read it back.
func (a *Azure) Create(ctx context.Context, name string, r io.Reader) (int64, error) {
	cr := &UploadSource{R: r}
	_, err := a.c.NewBlockBlobClient(a.blob(name)).UploadStream(ctx, cr, &blockblob.UploadStreamOptions{
		BlockSize: a.opts.BlockSize, Concurrency: a.opts.Concurrency,
		AccessConditions: &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfNoneMatch: ptr(azcore.ETagAny)}},
	})
	err = cr.Failed(err)
	if bloberror.HasCode(err, bloberror.BlobAlreadyExists, bloberror.ConditionNotMet) {
		err = fmt.Errorf("%w (%v)", ErrExists, err)
	}
	if bloberror.HasCode(err, bloberror.AuthorizationPermissionMismatch) {
		// A create-only credential (a SAS "rcl", a role without write) is refused before the
		// condition is evaluated when the blob exists: that refusal is the name being taken.
		if _, serr := a.Stat(ctx, name); serr == nil {
			err = fmt.Errorf("%w (%v)", ErrExists, err)
		}
	}
	if err != nil {
		return cr.N, a.scrub(fmt.Errorf("create %s in %s: %w", name, a, err))
	}
	return cr.N, nil
}

func (a *Azure) Get(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	rng := blob.HTTPRange{Offset: off}
	if length >= 0 {
		rng.Count = length
	}
	resp, err := a.c.NewBlobClient(a.blob(name)).DownloadStream(ctx, &blob.DownloadStreamOptions{Range: rng})
	if err != nil {
		return nil, a.scrub(fmt.Errorf("get %s from %s: %w", name, a, notFound(err)))
	}
	// The retry reader resumes a body cut mid-stream from where it stopped; its errors carry
	// the blob's URL too.
	return scrubbedReader{resp.NewRetryReader(ctx, &blob.RetryReaderOptions{MaxRetries: 5}), a.secrets}, nil
}

func (a *Azure) Stat(ctx context.Context, name string) (ObjectInfo, error) {
	p, err := a.c.NewBlobClient(a.blob(name)).GetProperties(ctx, nil)
	if err != nil {
		return ObjectInfo{}, a.scrub(fmt.Errorf("stat %s in %s: %w", name, a, notFound(err)))
	}
	info := ObjectInfo{Name: name}
	if p.ContentLength != nil {
		info.Size = *p.ContentLength
	}
	if p.LastModified != nil {
		info.ModTime = *p.LastModified
	}
	return info, nil
}

func (a *Azure) List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error {
	full := a.blob(prefix)
	pager := a.c.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Prefix: &full})
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return a.scrub(fmt.Errorf("list %q in %s: %w", prefix, a, err))
		}
		for _, b := range page.Segment.BlobItems {
			info := ObjectInfo{Name: strings.TrimPrefix(*b.Name, a.prefix)}
			if b.Properties != nil && b.Properties.ContentLength != nil {
				info.Size = *b.Properties.ContentLength
			}
			if b.Properties != nil && b.Properties.LastModified != nil {
				info.ModTime = *b.Properties.LastModified
			}
			if err := fn(info); err != nil {
				return err
			}
		}
	}
	return nil
}

func (a *Azure) Delete(ctx context.Context, name string) error {
	_, err := a.c.NewBlobClient(a.blob(name)).Delete(ctx, nil)
	if err != nil && !bloberror.HasCode(err, bloberror.BlobNotFound) {
		return a.scrub(fmt.Errorf("delete %s from %s: %w", name, a, a.immutableDelete(ctx, name, err)))
	}
	return nil
}

// Lock leases an empty blob under locks/. Azure expires a lease its holder stopped renewing,
// so a crashed holder frees the lock by itself within the lease duration. The lease id is this
// holder's own: renewing or releasing it cannot touch a successor's lease.
func (a *Azure) Lock(ctx context.Context, name string, ttl time.Duration) (Lock, error) {
	l, err := a.lock(ctx, name, ttl)
	if err != nil {
		return nil, a.scrub(err)
	}
	return l, nil
}

func (a *Azure) lock(ctx context.Context, name string, ttl time.Duration) (Lock, error) {
	bb := a.c.NewBlockBlobClient(a.blob("locks/" + name))
	if _, err := bb.GetProperties(ctx, nil); bloberror.HasCode(err, bloberror.BlobNotFound) {
		if _, err := bb.Upload(ctx, nopSeekCloser{}, nil); err != nil && !bloberror.HasCode(err, bloberror.LeaseIDMissing, bloberror.LeaseAlreadyPresent) {
			return nil, fmt.Errorf("lock %s in %s: create lock blob: %w", name, a, err)
		}
	}
	lc, err := lease.NewBlobClient(bb, nil)
	if err != nil {
		return nil, fmt.Errorf("lock %s in %s: %w", name, a, err)
	}
	// Azure leases last 15 to 60 seconds (or forever); renewal keeps a longer hold alive.
	secs := int32(min(max(ttl, 15*time.Second), 60*time.Second) / time.Second)
	acquired := time.Now()
	if _, err := lc.AcquireLease(ctx, secs, nil); err != nil {
		if bloberror.HasCode(err, bloberror.LeaseAlreadyPresent) {
			return nil, fmt.Errorf("lock %s in %s: %w by %s", name, a, ErrLocked, describeHolder(a.lockHolder(ctx, bb)))
		}
		return nil, fmt.Errorf("lock %s in %s: %w", name, a, err)
	}
	holder, _ := json.Marshal(currentHolder(name))
	meta := string(holder)
	_, _ = bb.SetMetadata(ctx, map[string]*string{"holder": &meta}, &blob.SetMetadataOptions{
		AccessConditions: &blob.AccessConditions{LeaseAccessConditions: &blob.LeaseAccessConditions{LeaseID: lc.LeaseID()}},
	})
	renew := func(ctx context.Context) error {
		_, err := lc.RenewLease(ctx, nil)
		if err == nil {
			return nil
		}
		// Named, as every other storage error is: when the storage keeps failing until the
		// lease's validity ends, the SDK reports only the deadline, and the lost lock would
		// not say where.
		err = a.scrub(fmt.Errorf("renew lock %s in %s: %w", name, a, err))
		if bloberror.HasCode(err, bloberror.LeaseIDMismatchWithLeaseOperation, bloberror.LeaseNotPresentWithLeaseOperation,
			bloberror.LeaseLost, bloberror.LeaseIsBrokenAndCannotBeRenewed, bloberror.BlobNotFound, bloberror.ContainerNotFound) {
			return fmt.Errorf("%w: %w", errLeaseTaken, err)
		}
		return err
	}
	release := func(ctx context.Context) error {
		_, err := lc.ReleaseLease(ctx, nil)
		// A lease that expired or went to a successor is not ours to release.
		if err != nil && !bloberror.HasCode(err, bloberror.LeaseIDMismatchWithLeaseOperation, bloberror.LeaseNotPresentWithLeaseOperation) {
			return a.scrub(fmt.Errorf("release lock %s in %s: %w", name, a, err))
		}
		return nil
	}
	return startLease(time.Duration(secs)*time.Second, acquired, renew, release), nil
}

func (a *Azure) lockHolder(ctx context.Context, bb *blockblob.Client) Holder {
	var h Holder
	if p, err := bb.GetProperties(ctx, nil); err == nil {
		for k, v := range p.Metadata {
			if strings.EqualFold(k, "holder") && v != nil {
				_ = json.Unmarshal([]byte(*v), &h)
			}
		}
	}
	return h
}

func notFound(err error) error {
	var re *azcore.ResponseError
	if bloberror.HasCode(err, bloberror.BlobNotFound, bloberror.ContainerNotFound) || (errors.As(err, &re) && re.StatusCode == http.StatusNotFound) {
		return fmt.Errorf("%w (%v)", ErrNotFound, err)
	}
	return err
}

// secrets are the credential strings that must never appear in an error's text.
type secrets []string

func secretsOf(o AzureOptions) secrets {
	var s secrets
	add := func(v string) {
		if v = strings.TrimSpace(v); len(v) >= 8 { // shorter values would blank ordinary words
			s = append(s, v, url.QueryEscape(v))
		}
	}
	add(o.AccountKey)
	add(strings.TrimPrefix(o.SASToken, "?"))
	if q, err := url.ParseQuery(strings.TrimPrefix(o.SASToken, "?")); err == nil {
		add(q.Get("sig"))
	}
	for _, kv := range strings.Split(o.ConnectionString, ";") {
		if k, v, ok := strings.Cut(kv, "="); ok && (strings.EqualFold(k, "AccountKey") || strings.EqualFold(k, "SharedAccessSignature")) {
			add(v)
			if q, err := url.ParseQuery(v); err == nil {
				add(q.Get("sig"))
			}
		}
	}
	return s
}

var (
	// urlQuery matches a URL's query string, where a SAS token travels; the SDK's transport errors
	// print the whole URL.
	urlQuery = regexp.MustCompile(`(?i)(https?://[^\s"'?]*)\?[^\s"']*`)
	// signatureParam matches a SAS signature or an account key outside a URL (a connection
	// string), even one this process was not configured with.
	signatureParam = regexp.MustCompile(`(?i)\b(sig|accountkey|sharedaccesssignature)=[^&;\s"']+`)
)

// scrub returns err with every secret removed from its text; errors.Is and errors.As still see
// the original chain, whose text only a caller that digs for it will print.
func (s secrets) scrub(err error) error {
	if err == nil {
		return nil
	}
	msg := urlQuery.ReplaceAllString(err.Error(), "$1")
	msg = signatureParam.ReplaceAllString(msg, "$1 REDACTED")
	for _, v := range s {
		msg = strings.ReplaceAll(msg, v, "REDACTED")
	}
	if msg == err.Error() {
		return err
	}
	return &scrubbedError{msg: msg, err: err}
}

func (a *Azure) scrub(err error) error { return a.secrets.scrub(err) }

type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.err }

// scrubbedReader scrubs the errors of a download's body, which the SDK's retry reader produces
// from failed re-requests.
type scrubbedReader struct {
	io.ReadCloser
	s secrets
}

func (r scrubbedReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		err = r.s.scrub(err)
	}
	return n, err
}

// CountingReader counts the bytes read through it, for a caller that must report how much it
// read (or sent) even when the read fails part-way.
type CountingReader struct {
	R io.Reader
	N int64
}

func (c *CountingReader) Read(p []byte) (int, error) {
	n, err := c.R.Read(p)
	c.N += int64(n)
	return n, err
}

// UploadSource is the data of a blob being uploaded with UploadStream, counted, whose only end
// is io.EOF itself. The SDK takes any error that wraps io.EOF (errors.Is) for the end of the
// data and commits the blob with what it read so far: an export whose request failed with
// "EOF" (a server killed as it answered) would be stored empty, and reused by later backups as
// its partition. Every other error of R reaches the SDK as errSourceFailed, which stops the
// upload before its commit; Failed gives R's error back.
type UploadSource struct {
	R   io.Reader
	N   int64
	err error
}

// errSourceFailed stands for the source's error inside the SDK, which must not see it wrap io.EOF.
var errSourceFailed = errors.New("the data to upload could not be read")

func (u *UploadSource) Read(p []byte) (int, error) {
	n, err := u.R.Read(p)
	u.N += int64(n)
	if err != nil && err != io.EOF {
		u.err = err
		err = errSourceFailed
	}
	return n, err
}

// Failed is the upload's error: the source's own where it failed, else the SDK's err.
func (u *UploadSource) Failed(err error) error {
	if u.err != nil {
		return u.err
	}
	return err
}

type nopSeekCloser struct{}

func (nopSeekCloser) Read([]byte) (int, error)       { return 0, io.EOF }
func (nopSeekCloser) Seek(int64, int) (int64, error) { return 0, nil }
func (nopSeekCloser) Close() error                   { return nil }

// MaxServerCopy is the largest object CopyFromURL fills, in one Put Block From URL: Azure's
// limit for one synchronous copy (Copy Blob From URL's). A larger blob would take several
// blocks, and the service checks a block only against that block's MD5, which no listing gives:
// such a copy could not be proven, so larger blobs are streamed.
const MaxServerCopy = 256 << 20

// copyBlockID names the one block of a copied object (base64, as block ids are).
var copyBlockID = base64.StdEncoding.EncodeToString([]byte("tracevault-copy0"))

// CopyFromURL implements ServerCopier with Put Block From URL and Put Block List: the service
// reads the source itself and compares the bytes it read with src.MD5 (x-ms-source-content-md5),
// which Copy Blob From URL does not do on Azurite. Like Put, the object exists only once
// committed; a failed copy leaves at most an uncommitted block, which Azure discards.
func (a *Azure) CopyFromURL(ctx context.Context, name string, src CopySource) error {
	if src.Size <= 0 || src.Size > MaxServerCopy {
		return fmt.Errorf("copy into %s in %s: %w: %d bytes is outside (0, %d]", name, a, ErrNoServerCopy, src.Size, MaxServerCopy)
	}
	bb := a.c.NewBlockBlobClient(a.blob(name))
	resp, err := bb.StageBlockFromURL(ctx, copyBlockID, src.URL, &blockblob.StageBlockFromURLOptions{
		Range:                   blob.HTTPRange{Offset: 0, Count: src.Size},
		SourceContentValidation: blob.SourceContentValidationTypeMD5(src.MD5),
	})
	if bloberror.HasCode(err, bloberror.MD5Mismatch) {
		return a.scrub(fmt.Errorf("copy into %s in %s: the source's bytes do not hash to md5 %x (its Content-MD5 is wrong, or it was rewritten): %w", name, a, src.MD5, err))
	}
	if bloberror.HasCode(err, bloberror.AuthorizationPermissionMismatch) {
		// A create-only credential (Azurite refuses Put Block From URL with a SAS "rcl"): no
		// copy will work in this backup; the caller streams instead, from the first blob on.
		return a.scrub(fmt.Errorf("copy into %s in %s: %w: the credential may not fill a blob from a URL: %w", name, a, ErrNoServerCopy, err))
	}
	if err != nil {
		return a.scrub(fmt.Errorf("copy into %s in %s: the service could not read the source: %w", name, a, err))
	}
	// The service echoes the MD5 of what it read; one that differs is a service that did not
	// check, whose copy is not proven.
	if len(resp.ContentMD5) > 0 && !bytes.Equal(resp.ContentMD5, src.MD5) {
		return fmt.Errorf("copy into %s in %s: the service read bytes with md5 %x, the source claims %x", name, a, resp.ContentMD5, src.MD5)
	}
	if _, err := bb.CommitBlockList(ctx, []string{copyBlockID}, &blockblob.CommitBlockListOptions{
		HTTPHeaders: &blob.HTTPHeaders{BlobContentMD5: src.MD5},
	}); err != nil {
		return a.scrub(fmt.Errorf("copy into %s in %s: commit: %w", name, a, err))
	}
	// A source shorter than the range would have failed the MD5 check unless its shorter bytes
	// had that MD5; the size closes the case.
	if info, err := a.Stat(ctx, name); err != nil || info.Size != src.Size {
		_ = a.Delete(ctx, name)
		return fmt.Errorf("copy into %s in %s: stored %d bytes, want %d: %w", name, a, info.Size, src.Size, errors.Join(ErrCorrupt, err))
	}
	return nil
}

// ReadURL returns a URL the storage service can read name from for ttl, to be a copy's source:
// the blob URL with the configured SAS; a service SAS signed with the account key; or a
// user-delegation SAS obtained with the default credential chain (which needs a role that may
// generate user delegation keys, e.g. Storage Blob Delegator or Data Reader). Read permission
// only, this one blob only.
func (a *Azure) ReadURL(ctx context.Context, name string, ttl time.Duration) (string, error) {
	bc := a.c.NewBlobClient(a.blob(name))
	if u, err := url.Parse(bc.URL()); err == nil && u.Query().Get("sig") != "" {
		return bc.URL(), nil
	}
	start, expiry := time.Now().Add(-5*time.Minute).UTC(), time.Now().Add(ttl).UTC()
	u, err := bc.GetSASURL(sas.BlobPermissions{Read: true}, expiry, &blob.GetSASURLOptions{StartTime: &start})
	if err == nil {
		return u, nil
	}
	if a.token == nil {
		return "", a.scrub(fmt.Errorf("%w: sign a read SAS for %s in %s: %w", ErrNoServerCopy, name, a, err))
	}
	cred, err := a.delegated.get(ctx, a, expiry)
	if err != nil {
		return "", err
	}
	qp, err := sas.BlobSignatureValues{Protocol: sas.ProtocolHTTPS, StartTime: start, ExpiryTime: expiry,
		Permissions: (&sas.BlobPermissions{Read: true}).String(), ContainerName: a.opts.Container, BlobName: a.blob(name)}.SignWithUserDelegation(cred)
	if err != nil {
		return "", fmt.Errorf("%w: sign a user-delegation SAS for %s in %s: %w", ErrNoServerCopy, name, a, err)
	}
	return bc.URL() + "?" + qp.Encode(), nil
}

// delegationKey is a user delegation key, fetched once and reused until shortly before it
// expires: one request per backup, not per blob.
type delegationKey struct {
	mu    sync.Mutex
	cred  *service.UserDelegationCredential
	until time.Time
	err   error
}

func (d *delegationKey) get(ctx context.Context, a *Azure, need time.Time) (*service.UserDelegationCredential, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.err != nil {
		return nil, d.err // a role that is missing stays missing for this run
	}
	if d.cred != nil && need.Before(d.until) {
		return d.cred, nil
	}
	svc, err := service.NewClient(azureEndpoint(a.opts), a.token, &service.ClientOptions{ClientOptions: azcore.ClientOptions{Retry: a.opts.Retry, Transport: a.opts.Transport}})
	if err == nil {
		// Keys live at most 7 days; 6 hours covers the longest backup between refreshes.
		start, until := time.Now().Add(-5*time.Minute).UTC(), need.Add(6*time.Hour).UTC()
		var cred *service.UserDelegationCredential
		cred, err = svc.GetUserDelegationCredential(ctx, service.KeyInfo{Start: ptr(start.Format(sas.TimeFormat)), Expiry: ptr(until.Format(sas.TimeFormat))}, nil)
		if err == nil {
			d.cred, d.until = cred, until
			return cred, nil
		}
	}
	err = a.scrub(fmt.Errorf("%w: get a user delegation key for %s (the identity needs Microsoft.Storage/storageAccounts/blobServices/generateUserDelegationKey): %w", ErrNoServerCopy, a, err))
	if ctx.Err() == nil {
		d.err = err
	}
	return nil, err
}

func ptr[T any](v T) *T { return &v }
