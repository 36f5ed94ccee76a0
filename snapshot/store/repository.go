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
	"slices"
	"strings"
	"sync"
	"time"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"

	"github.com/tracevault/tracevault/snapshot/progress"
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
	// MustExist refuses to create a repository where there is none: every command but backup
	// and init sets it, so a mistyped URL is an error instead of a new, empty repository.
	MustExist bool
	// AppendOnly writes every object once, to a new key, and never deletes ([storage]
	// append_only; appendonly.go): prune and delete refuse.
	AppendOnly bool
}

// ObjectRef is a stored object as a manifest records it.
type ObjectRef struct {
	ID          string `json:"id"`
	Size        int64  `json:"size"`     // stored bytes
	RawSize     int64  `json:"raw_size"` // plaintext bytes
	SHA256      string `json:"sha256"`   // of the plaintext
	Fingerprint string `json:"fingerprint,omitempty"`
	// Format is "" for the codec's format, FormatRaw for a server-side copy (servercopy.go),
	// which MD5 checks instead of SHA256.
	Format string `json:"format,omitempty"`
	MD5    string `json:"md5,omitempty"`
}

// Name is the object's path in the backend, or "" for an id tracevault never writes, so that no
// path is ever built from a crafted one; OpenObject and Verify refuse such a ref.
func (o ObjectRef) Name() string {
	if ValidObjectID(o.ID) != nil {
		return ""
	}
	return "data/" + o.ID[:2] + "/" + o.ID
}

// repoConfig is the self-description stored at "config".
type repoConfig struct {
	Version     int       `json:"version"`
	ID          string    `json:"id"`
	Created     time.Time `json:"created"`
	Compression string    `json:"compression"`
	Encrypted   bool      `json:"encrypted"`
	// Key is the repository key, 32 random bytes sealed with age to the recipients or the
	// passphrase (base64). Opening proves the configured keys unlock the repository, and manifest
	// authentication keys are derived from it (auth.go). Encrypted repositories only.
	Key string `json:"key,omitempty"`
	// Recipients are the X25519 recipients every object is encrypted to: a writer configured with
	// other ones is refused rather than mixing keys in one repository.
	Recipients []string `json:"recipients,omitempty"`
}

const formatVersion = 1

// ErrNoRepository means there is no repository at the URL and the caller did not ask to create one.
var ErrNoRepository = errors.New("no repository there")

// Repository stores objects and manifests through the codec on a Backend.
type Repository struct {
	b     Backend
	codec codec
	cfg   repoConfig
	log   *slog.Logger
	// secrets are what the opener holds (identities, passphrase); authKeys are the manifest
	// authentication keys derived from them and the repository key.
	secrets  []secret
	authKeys []authKey
	// configured are the sources the configuration covers, which a full set holds whole
	// (SetConfigured); empty, "latest" is any complete set.
	configured []string

	mu    sync.Mutex
	index map[string]ObjectRef // fingerprint -> object, from every manifest
	// loading is held while the index is read, so that the parallel exports' first lookups
	// read every manifest once between them, not once each.
	loading sync.Mutex
	// manifests is each manifest's last read, which Catalog and the index reuse while the
	// listing shows it unchanged (manifest_cache.go).
	manifests manifestCache
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
		// NewFS creates its directory; a command that only reads must not leave one behind.
		if _, err := os.Stat(u.Path); opts.MustExist && errors.Is(err, os.ErrNotExist) {
			return nil, noRepository(opts.URL)
		}
		return NewFS(u.Path)
	case "azblob":
		return NewAzure(ctx, AzureOptions{
			Container: u.Host, Prefix: u.Path,
			ConnectionString: opts.ConnectionString, AccountName: opts.AccountName, AccountKey: opts.AccountKey,
			SASToken: opts.SASToken, Endpoint: opts.Endpoint, BlockSize: opts.BlockSize, Concurrency: opts.Concurrency,
			NoCreate: opts.MustExist,
		})
	default:
		return nil, fmt.Errorf("storage url %q: use file:///absolute/path or azblob://container[/prefix]", opts.URL)
	}
}

// OpenBackend opens a repository on an existing backend (tests use it with a faulty transport).
func OpenBackend(ctx context.Context, b Backend, opts Options) (*Repository, error) {
	if opts.AppendOnly {
		b = AppendOnly(b)
	}
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
	if err := r.loadOrInitConfig(ctx, opts.MustExist); err != nil {
		return nil, err
	}
	return r, nil
}

// setupEncryption applies the rules of [storage.encryption]. Two set-ups are supported: a
// passphrase, or X25519 recipients with the identity_file that unlocks them. Every writer must be
// able to read earlier manifests (incremental reuse, prune) and to authenticate the manifests it
// writes, both of which take a secret: recipients alone (write-only) are refused, and an
// identity_file alone would write plaintext into an encrypted repository.
func (r *Repository) setupEncryption(opts Options) error {
	const fix = "set recipients and identity_file, or passphrase alone, in [storage.encryption]"
	switch hasR, hasI, hasP := len(opts.Recipients) > 0, opts.IdentityFile != "", opts.Passphrase != ""; {
	case hasP && (hasR || hasI):
		return fmt.Errorf("encryption: a passphrase goes alone, without recipients or identity_file; %s", fix)
	case hasR && !hasI:
		return fmt.Errorf("encryption: recipients without identity_file cannot read earlier manifests or authenticate new ones (write-only set-ups are not supported); %s", fix)
	case hasI && !hasR:
		return fmt.Errorf("encryption: identity_file without recipients would write unencrypted objects; add the recipients ('age-keygen -y %s' prints them)", opts.IdentityFile)
	case hasP:
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
		r.secrets = []secret{{id: "passphrase", value: []byte(opts.Passphrase)}}
		return nil
	case !hasR:
		return nil
	}
	for _, s := range opts.Recipients {
		rc, err := age.ParseX25519Recipient(s)
		if err != nil {
			return fmt.Errorf("age recipient %q: %w", s, err)
		}
		r.codec.recipients = append(r.codec.recipients, rc)
	}
	ids, err := readIdentities(opts.IdentityFile)
	if err != nil {
		return err
	}
	for _, id := range ids {
		r.codec.identities = append(r.codec.identities, id)
		rcp := id.Recipient().String()
		if slices.Contains(opts.Recipients, rcp) {
			r.secrets = append(r.secrets, secret{id: rcp, value: []byte(id.String())})
		}
	}
	if len(r.secrets) == 0 {
		return fmt.Errorf("age identity file %s: none of its keys belongs to the recipients, so tracevault could not read what it writes; add its recipient ('age-keygen -y %s') to recipients", opts.IdentityFile, opts.IdentityFile)
	}
	return nil
}

func readIdentities(path string) ([]*age.X25519Identity, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("age identity file: %w", err)
	}
	defer f.Close()
	parsed, err := age.ParseIdentities(f)
	if err != nil {
		return nil, fmt.Errorf("age identity file %s: %w", path, err)
	}
	var out []*age.X25519Identity
	for _, id := range parsed {
		if x, ok := id.(*age.X25519Identity); ok {
			out = append(out, x)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("age identity file %s holds no X25519 key (AGE-SECRET-KEY-1...); generate one with age-keygen", path)
	}
	return out, nil
}

func noRepository(url string) error {
	return fmt.Errorf("open repository %s: %w (no config); check [storage] url, or create one with 'tracevault init' ('tracevault backup' also creates it)", url, ErrNoRepository)
}

func (r *Repository) loadOrInitConfig(ctx context.Context, mustExist bool) error {
	rc, err := r.b.Get(ctx, "config", 0, -1)
	if errors.Is(err, ErrNotFound) {
		if mustExist {
			return noRepository(r.b.String())
		}
		return r.initConfig(ctx)
	}
	if err != nil {
		return fmt.Errorf("open repository %s: %w", r.b, err)
	}
	defer rc.Close()
	if err := json.NewDecoder(io.LimitReader(rc, 1<<20)).Decode(&r.cfg); err != nil {
		return fmt.Errorf("open repository %s: config is unreadable: %w", r.b, err)
	}
	encrypting := len(r.codec.recipients) > 0
	switch {
	case r.cfg.Version > formatVersion:
		return fmt.Errorf("open repository %s: format version %d is newer than this tracevault understands (%d); upgrade tracevault", r.b, r.cfg.Version, formatVersion)
	case r.cfg.Encrypted && !encrypting:
		return fmt.Errorf("open repository %s: it is encrypted; set [storage.encryption] recipients and identity_file, or passphrase", r.b)
	case !r.cfg.Encrypted && encrypting:
		// An encrypted repository never becomes plaintext: either this is not the repository meant,
		// or its config was replaced. Removing [storage.encryption] is not the fix for the latter.
		return fmt.Errorf("open repository %s: its config says it is not encrypted but [storage.encryption] is set; check [storage] url, or, to encrypt, start a new repository (an existing one is never converted)", r.b)
	case !r.cfg.Encrypted:
		return nil
	}
	return r.unlock()
}

// initConfig creates the repository: a config naming its id and, when encrypted, its sealed key.
func (r *Repository) initConfig(ctx context.Context) error {
	id := make([]byte, 16)
	_, _ = rand.Read(id)
	r.cfg = repoConfig{Version: formatVersion, ID: hex.EncodeToString(id), Created: time.Now().UTC(), Compression: "zstd", Encrypted: len(r.codec.recipients) > 0}
	if r.cfg.Encrypted {
		if err := r.sealKey(); err != nil {
			return fmt.Errorf("initialise repository %s: %w", r.b, err)
		}
	}
	b, _ := json.MarshalIndent(r.cfg, "", "  ")
	if _, err := r.b.Put(ctx, "config", bytes.NewReader(b)); err != nil {
		return fmt.Errorf("initialise repository %s: %w", r.b, err)
	}
	r.log.Info("initialised repository", "repository", r.b.String(), "encrypted", r.cfg.Encrypted)
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

// FingerprintCheck is implemented by a source that learns only at its end whether it held what
// its fingerprint describes: a ClickHouse export whose partition changed while it was read.
type FingerprintCheck interface {
	MatchesFingerprint() bool
}

// PutObject stores src, or returns the object an earlier snapshot stored with the same
// fingerprint (reused = true) without reading src. An empty fingerprint always uploads. A src
// that is a FingerprintCheck and, read to its end, does not match is stored without the
// fingerprint, so that no later snapshot reuses it.
func (r *Repository) PutObject(ctx context.Context, fingerprint string, src io.Reader) (ObjectRef, bool, error) {
	if fingerprint != "" {
		if ref, ok, err := r.lookup(ctx, fingerprint); err != nil || ok {
			return ref, ok, err
		}
	}
	ref := ObjectRef{ID: newID()}
	stored, d := r.codec.encode(src)
	defer stored.Close()
	n, err := r.b.Put(ctx, ref.Name(), stored)
	if err != nil {
		return ObjectRef{}, false, err
	}
	ref.Size, ref.RawSize, ref.SHA256 = n, d.size, d.sum()
	if c, ok := src.(FingerprintCheck); ok && !c.MatchesFingerprint() {
		fingerprint = ""
	}
	ref.Fingerprint = fingerprint
	if fingerprint != "" {
		r.remember(fingerprint, ref)
	}
	return ref, false, nil
}

// remember adds a stored object to the index, unless a lock taken meanwhile dropped the index:
// the next lookup reads it again from the manifests.
func (r *Repository) remember(fingerprint string, ref ObjectRef) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.index != nil {
		r.index[fingerprint] = ref
	}
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
	if err != nil && !errors.Is(err, ErrNotFound) {
		// A storage fault or a deadline says nothing about the object: reporting it missing would
		// send the operator after damage that is not there (and a pack cannot be uploaded again).
		return ObjectRef{}, false, fmt.Errorf("check that object %s of an earlier snapshot still exists: %w", ref.Name(), err)
	}
	if err != nil || info.Size != ref.Size {
		r.log.Warn("object named by an earlier snapshot is missing or damaged; uploading again", "object", ref.Name(), "err", err)
		return ObjectRef{}, false, nil
	}
	return ref, true, nil
}

func (r *Repository) loadIndex(ctx context.Context) error {
	r.loading.Lock()
	defer r.loading.Unlock()
	r.mu.Lock()
	loaded := r.index != nil
	r.mu.Unlock()
	if loaded {
		return nil
	}
	// The cached manifests themselves, not copies: the index only reads them, and a backup's
	// lock (resetIndex) reloads it, which must not cost a GET per manifest every run.
	manifests, damaged, err := r.catalog(ctx, false)
	if err != nil {
		return err
	}
	r.logDamaged(damaged)
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
	if err := ValidObjectID(ref.ID); err != nil {
		return nil, fmt.Errorf("read object: %w", err)
	}
	if ref.Format == FormatRaw {
		return r.openRaw(ctx, ref)
	}
	stored, err := r.b.Get(ctx, ref.Name(), 0, -1)
	if err != nil {
		return nil, err
	}
	plain, err := r.codec.decode(stored)
	if err != nil {
		stored.Close()
		return nil, fmt.Errorf("read %s: %w", ref.Name(), err)
	}
	v := &verifier{r: plain, close: stored.Close, d: newDigest(), want: ref, name: ref.Name()}
	// Counted above the verifier, so an object's rows count only once its checksum held.
	return progress.ReadCloser(progress.From(ctx), v, progress.Unit{Object: ref.ID}, true), nil
}

// Lock takes the exclusive repository lock for an operation that writes (backup, prune,
// delete), waiting up to wait for a holder to finish.
func (r *Repository) Lock(ctx context.Context, what string, wait time.Duration) (Lock, error) {
	deadline := time.Now().Add(wait)
	for {
		l, err := r.lockRepository(ctx)
		if err == nil {
			// Another process (a second daemon, a one-shot backup, a prune) may have written
			// since this one read the manifests: reuse only what the repository holds now, or
			// an incremental backup would upload again what the other stored, and a blob
			// backup would find its base snapshot's packs unknown.
			r.resetIndex()
			return l, nil
		}
		if !errors.Is(err, ErrLocked) || time.Now().After(deadline) {
			if errors.Is(err, ErrLocked) {
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
