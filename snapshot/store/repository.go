// Package store is the snapshot repository: the only thing a disaster-recovery restore needs.
//
// Layout, modelled on restic's:
//
//	config                  format version, encryption, compression: the repository describes itself
//	data/<xx>/<id>          objects: zstd, then age when encrypted; named by a random id
//	snapshots/<id>.json     manifests, written last: a snapshot exists only once its manifest does
//	runs/                   the daemon's run history
//	locks/<name>            leases
//
// Incremental backups reuse objects by fingerprint: a source names what an object holds (for a
// ClickHouse partition, its part names), and an object with the same fingerprint in any earlier
// manifest is referenced instead of uploaded again.
//
// Crash safety follows from the order of writes: objects first, manifest last. A crash leaves
// objects no manifest references (orphans), never a manifest referencing a missing object. Prune
// removes orphans under the exclusive repository lock, which backups also hold, so it can never
// delete an object a running backup has uploaded but not yet referenced; a backup whose lease is
// lost must stop, which the Lost channel tells it.
package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"
)

// Options open a repository. The config package maps [storage] to them.
type Options struct {
	URL                                                           string // file:///abs/path or azblob://container[/prefix]
	ConnectionString, AccountName, AccountKey, SASToken, Endpoint string
	BlockSize                                                     int64
	Concurrency                                                   int
	CompressionLevel                                              int // zstd 1..22
	Recipients                                                    []string
	IdentityFile                                                  string
	Passphrase                                                    string
	Log                                                           *slog.Logger
}

// ObjectRef is a stored object as a manifest records it.
type ObjectRef struct {
	ID          string `json:"id"`
	Size        int64  `json:"size"`     // stored bytes
	RawSize     int64  `json:"raw_size"` // plaintext bytes
	SHA256      string `json:"sha256"`   // of the plaintext
	Fingerprint string `json:"fingerprint,omitempty"`
}

// Name is the object's path in the backend.
func (o ObjectRef) Name() string { return "data/" + o.ID[:2] + "/" + o.ID }

// repoConfig is the self-description stored at "config".
type repoConfig struct {
	Version     int       `json:"version"`
	ID          string    `json:"id"`
	Created     time.Time `json:"created"`
	Compression string    `json:"compression"`
	Encrypted   bool      `json:"encrypted"`
}

const formatVersion = 1

// Repository stores objects and manifests through the codec on a Backend.
type Repository struct {
	b     Backend
	codec codec
	cfg   repoConfig
	log   *slog.Logger

	mu    sync.Mutex
	index map[string]ObjectRef // fingerprint -> object, from every manifest
}

// Open connects to the repository at opts.URL, initialising it if empty.
func Open(ctx context.Context, opts Options) (*Repository, error) {
	b, err := openBackend(ctx, opts)
	if err != nil {
		return nil, err
	}
	return OpenBackend(ctx, b, opts)
}

func openBackend(ctx context.Context, opts Options) (Backend, error) {
	u, err := url.Parse(opts.URL)
	if err != nil {
		return nil, fmt.Errorf("storage url %q: %w", opts.URL, err)
	}
	switch u.Scheme {
	case "file":
		return NewFS(u.Path)
	case "azblob":
		return NewAzure(ctx, AzureOptions{
			Container: u.Host, Prefix: u.Path,
			ConnectionString: opts.ConnectionString, AccountName: opts.AccountName, AccountKey: opts.AccountKey,
			SASToken: opts.SASToken, Endpoint: opts.Endpoint, BlockSize: opts.BlockSize, Concurrency: opts.Concurrency,
		})
	default:
		return nil, fmt.Errorf("storage url %q: use file:///absolute/path or azblob://container[/prefix]", opts.URL)
	}
}

// OpenBackend opens a repository on an existing backend (tests use it with a faulty transport).
func OpenBackend(ctx context.Context, b Backend, opts Options) (*Repository, error) {
	r := &Repository{b: b, log: opts.Log}
	if r.log == nil {
		r.log = slog.Default()
	}
	if opts.CompressionLevel == 0 {
		opts.CompressionLevel = 1
	}
	r.codec.level = zstd.EncoderLevelFromZstd(opts.CompressionLevel)
	if err := r.setupEncryption(opts); err != nil {
		return nil, err
	}
	if err := r.loadOrInitConfig(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Repository) setupEncryption(opts Options) error {
	for _, s := range opts.Recipients {
		rc, err := age.ParseX25519Recipient(s)
		if err != nil {
			return fmt.Errorf("age recipient %q: %w", s, err)
		}
		r.codec.recipients = append(r.codec.recipients, rc)
	}
	if opts.IdentityFile != "" {
		f, err := os.Open(opts.IdentityFile)
		if err != nil {
			return fmt.Errorf("age identity file: %w", err)
		}
		ids, err := age.ParseIdentities(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("age identity file %s: %w", opts.IdentityFile, err)
		}
		r.codec.identities = ids
	}
	if opts.Passphrase != "" {
		rc, err := age.NewScryptRecipient(opts.Passphrase)
		if err != nil {
			return fmt.Errorf("age passphrase: %w", err)
		}
		// Every object carries its own scrypt stanza; the default work factor (2^18) would cost
		// about a second per object, so a snapshot of hundreds of partitions uses 2^15.
		rc.SetWorkFactor(15)
		id, err := age.NewScryptIdentity(opts.Passphrase)
		if err != nil {
			return fmt.Errorf("age passphrase: %w", err)
		}
		r.codec.recipients, r.codec.identities = []age.Recipient{rc}, []age.Identity{id}
	}
	return nil
}

func (r *Repository) loadOrInitConfig(ctx context.Context) error {
	rc, err := r.b.Get(ctx, "config", 0, -1)
	if errors.Is(err, ErrNotFound) {
		id := make([]byte, 16)
		_, _ = rand.Read(id)
		r.cfg = repoConfig{Version: formatVersion, ID: hex.EncodeToString(id), Created: time.Now().UTC(), Compression: "zstd", Encrypted: len(r.codec.recipients) > 0}
		b, _ := json.MarshalIndent(r.cfg, "", "  ")
		if _, err := r.b.Put(ctx, "config", bytes.NewReader(b)); err != nil {
			return fmt.Errorf("initialise repository %s: %w", r.b, err)
		}
		r.log.Info("initialised repository", "repository", r.b.String(), "encrypted", r.cfg.Encrypted)
		return nil
	}
	if err != nil {
		return fmt.Errorf("open repository %s: %w", r.b, err)
	}
	defer rc.Close()
	if err := json.NewDecoder(io.LimitReader(rc, 1<<20)).Decode(&r.cfg); err != nil {
		return fmt.Errorf("open repository %s: config is unreadable: %w", r.b, err)
	}
	switch {
	case r.cfg.Version > formatVersion:
		return fmt.Errorf("open repository %s: format version %d is newer than this tracevault understands (%d); upgrade tracevault", r.b, r.cfg.Version, formatVersion)
	case r.cfg.Encrypted && len(r.codec.recipients) == 0 && len(r.codec.identities) == 0:
		return fmt.Errorf("open repository %s: it is encrypted; set [storage.encryption] recipients and identity_file, or passphrase", r.b)
	case !r.cfg.Encrypted && (len(r.codec.recipients) > 0 || len(r.codec.identities) > 0):
		return fmt.Errorf("open repository %s: it was created without encryption; remove [storage.encryption] or use a new repository", r.b)
	}
	return nil
}

// Backend returns the backend, for locks and the run history.
func (r *Repository) Backend() Backend { return r.b }

// ID is the repository's identity, fixed when it was created: daemons sharing a repository share
// a schedule, and use it to tell their coordination apart from other deployments'.
func (r *Repository) ID() string { return r.cfg.ID }

func (r *Repository) String() string { return r.b.String() }

func newID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// PutObject stores src, or returns the object an earlier snapshot stored with the same
// fingerprint (reused = true) without reading src. An empty fingerprint always uploads.
func (r *Repository) PutObject(ctx context.Context, fingerprint string, src io.Reader) (ObjectRef, bool, error) {
	if fingerprint != "" {
		if ref, ok, err := r.lookup(ctx, fingerprint); err != nil || ok {
			return ref, ok, err
		}
	}
	ref := ObjectRef{ID: newID(), Fingerprint: fingerprint}
	stored, d := r.codec.encode(src)
	defer stored.Close()
	n, err := r.b.Put(ctx, ref.Name(), stored)
	if err != nil {
		return ObjectRef{}, false, err
	}
	ref.Size, ref.RawSize, ref.SHA256 = n, d.size, d.sum()
	if fingerprint != "" {
		r.mu.Lock()
		r.index[fingerprint] = ref
		r.mu.Unlock()
	}
	return ref, false, nil
}

// lookup finds a reusable object, checking that it still exists: a manifest may outlive its
// objects only through damage, and reusing a missing object would spread the damage.
func (r *Repository) lookup(ctx context.Context, fingerprint string) (ObjectRef, bool, error) {
	if err := r.loadIndex(ctx); err != nil {
		return ObjectRef{}, false, err
	}
	r.mu.Lock()
	ref, ok := r.index[fingerprint]
	r.mu.Unlock()
	if !ok {
		return ObjectRef{}, false, nil
	}
	info, err := r.b.Stat(ctx, ref.Name())
	if err != nil || info.Size != ref.Size {
		r.log.Warn("object named by an earlier snapshot is missing or damaged; uploading again", "object", ref.Name(), "err", err)
		return ObjectRef{}, false, nil
	}
	return ref, true, nil
}

func (r *Repository) loadIndex(ctx context.Context) error {
	r.mu.Lock()
	loaded := r.index != nil
	r.mu.Unlock()
	if loaded {
		return nil
	}
	manifests, err := r.Snapshots(ctx)
	if err != nil {
		return err
	}
	index := map[string]ObjectRef{}
	for _, m := range manifests {
		for _, o := range m.Objects {
			if o.Fingerprint != "" {
				index[o.Fingerprint] = o.ObjectRef
			}
		}
	}
	r.mu.Lock()
	r.index = index
	r.mu.Unlock()
	return nil
}

// OpenObject reads an object's plaintext; reading fails, naming the object, if it is damaged.
func (r *Repository) OpenObject(ctx context.Context, ref ObjectRef) (io.ReadCloser, error) {
	stored, err := r.b.Get(ctx, ref.Name(), 0, -1)
	if err != nil {
		return nil, err
	}
	plain, err := r.codec.decode(stored)
	if err != nil {
		stored.Close()
		return nil, fmt.Errorf("read %s: %w", ref.Name(), err)
	}
	return &verifier{r: plain, close: stored.Close, d: newDigest(), want: ref, name: ref.Name()}, nil
}

// Lock takes the exclusive repository lock for an operation that writes (backup, prune,
// delete), waiting up to wait for a holder to finish.
func (r *Repository) Lock(ctx context.Context, what string, wait time.Duration) (Lock, error) {
	deadline := time.Now().Add(wait)
	for {
		l, err := r.b.Lock(ctx, "repository", 60*time.Second)
		if err == nil || !errors.Is(err, ErrLocked) || time.Now().After(deadline) {
			if err != nil && errors.Is(err, ErrLocked) {
				return nil, fmt.Errorf("%s: %w; it finishes by itself, or its lease expires within 60 s if it died", what, err)
			}
			return l, err
		}
		r.log.Info("waiting for the repository lock", "for", what, "holder", strings.TrimPrefix(err.Error(), "lock repository in "))
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}
