package store

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"

	"filippo.io/age"
)

// Manifest authentication in an encrypted repository.
//
// age encrypts to public keys: anyone who knows a recipient, and can write the container, can
// make a manifest that decrypts. So a manifest is trusted only if it carries a MAC under a key
// that needs a secret: HMAC-SHA256(secret, label || repository key), where the secret is the
// passphrase or an X25519 identity whose recipient the repository encrypts to, and the
// repository key is 32 random bytes sealed in config to the recipients (so it binds the MACs to
// this repository, and opening proves the configured keys unlock it). A manifest carries one MAC
// per secret of its writer; a reader accepts it if one verifies under a secret the reader holds.
// Plaintext repositories authenticate nothing (see docs/design.md, "What a repository trusts").

// secret is a passphrase or an identity's secret key, named by what a manifest calls it: the
// identity's recipient, or "passphrase".
type secret struct {
	id    string
	value []byte
}

type authKey struct {
	id  string
	key []byte
}

// ManifestMAC authenticates a manifest under one writer's secret.
type ManifestMAC struct {
	Key string `json:"key"` // the secret's name: an age recipient, or "passphrase"
	MAC string `json:"mac"` // hex HMAC-SHA256 of the manifest without its auth
}

const (
	repositoryKeySize = 32
	authLabel         = "tracevault manifest authentication v1\x00"
)

// sealKey makes the repository key of a new encrypted repository and records its recipients.
func (r *Repository) sealKey() error {
	k := make([]byte, repositoryKeySize)
	if _, err := rand.Read(k); err != nil {
		return err
	}
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, r.codec.recipients...)
	if err != nil {
		return fmt.Errorf("seal repository key: %w", err)
	}
	if _, err := w.Write(k); err != nil {
		return fmt.Errorf("seal repository key: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("seal repository key: %w", err)
	}
	r.cfg.Key = base64.StdEncoding.EncodeToString(buf.Bytes())
	r.cfg.Recipients = r.recipientNames()
	r.deriveAuthKeys(k)
	return nil
}

// recipientNames lists the X25519 recipients objects are encrypted to, sorted; none for a passphrase.
func (r *Repository) recipientNames() []string {
	var out []string
	for _, rc := range r.codec.recipients {
		if x, ok := rc.(*age.X25519Recipient); ok {
			out = append(out, x.String())
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// unlock checks that the configured keys are the repository's and derives the authentication keys.
func (r *Repository) unlock() error {
	if r.cfg.Key == "" {
		return fmt.Errorf("open repository %s: it is encrypted but has no repository key (made by a tracevault before manifests were authenticated, or its config was replaced); start a new repository", r.b)
	}
	if want, have := r.cfg.Recipients, r.recipientNames(); !slices.Equal(want, have) {
		return fmt.Errorf("open repository %s: it encrypts to recipients %v but [storage.encryption] lists %v; use the repository's recipients and identity_file (one repository never mixes keys), or start a new repository for new keys", r.b, want, have)
	}
	sealed, err := base64.StdEncoding.DecodeString(r.cfg.Key)
	if err != nil {
		return fmt.Errorf("open repository %s: its sealed key is not base64: %w", r.b, err)
	}
	dec, err := age.Decrypt(bytes.NewReader(sealed), r.codec.identities...)
	if err != nil {
		return fmt.Errorf("open repository %s: the configured identity_file or passphrase does not unlock it (%w); use the keys it was created with", r.b, err)
	}
	k, err := io.ReadAll(io.LimitReader(dec, repositoryKeySize+1))
	if err != nil || len(k) != repositoryKeySize {
		return fmt.Errorf("open repository %s: its sealed key is damaged (%d bytes, %v); restore config from a copy", r.b, len(k), err)
	}
	r.deriveAuthKeys(k)
	return nil
}

func (r *Repository) deriveAuthKeys(k []byte) {
	r.authKeys = r.authKeys[:0]
	for _, s := range r.secrets {
		h := hmac.New(sha256.New, s.value)
		h.Write([]byte(authLabel))
		h.Write(k)
		r.authKeys = append(r.authKeys, authKey{id: s.id, key: h.Sum(nil)})
	}
}

// manifestMAC is the MAC of m's canonical encoding without its Auth: what a reader decodes,
// encoded again. encoding/json writes struct fields in order and map keys sorted; the decode in
// between makes the writer's bytes equal the reader's where encoding is lossy (invalid UTF-8 in
// an error text becomes U+FFFD). Fields a reader does not know are not authenticated, and not
// acted on either.
func manifestMAC(key []byte, m *Manifest) (string, error) {
	c := *m
	c.Auth = nil
	b, err := json.Marshal(&c)
	if err != nil {
		return "", err
	}
	var decoded Manifest
	if err := json.Unmarshal(b, &decoded); err != nil {
		return "", err
	}
	if b, err = json.Marshal(&decoded); err != nil {
		return "", err
	}
	h := hmac.New(sha256.New, key)
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil)), nil
}

// sign sets m.Auth in an encrypted repository.
func (r *Repository) sign(m *Manifest) error {
	m.Auth = nil
	if !r.cfg.Encrypted {
		return nil
	}
	var auth []ManifestMAC
	for _, k := range r.authKeys {
		mac, err := manifestMAC(k.key, m)
		if err != nil {
			return fmt.Errorf("authenticate snapshot %s: %w", m.ID, err)
		}
		auth = append(auth, ManifestMAC{Key: k.id, MAC: mac})
	}
	m.Auth = auth
	return nil
}

// ErrUnauthenticated means a manifest in an encrypted repository carries no MAC that verifies
// under the reader's keys: it was forged, altered, or written with keys the reader does not hold.
var ErrUnauthenticated = errors.New("manifest is not authenticated")

func (r *Repository) authenticate(m *Manifest) error {
	if !r.cfg.Encrypted {
		return nil
	}
	if len(m.Auth) == 0 {
		return fmt.Errorf("%w: it carries no MAC, so it was not written by a holder of this repository's keys", ErrUnauthenticated)
	}
	for _, a := range m.Auth {
		for _, k := range r.authKeys {
			if a.Key != k.id {
				continue
			}
			mac, err := manifestMAC(k.key, m)
			if err == nil && hmac.Equal([]byte(mac), []byte(a.MAC)) {
				return nil
			}
		}
	}
	return fmt.Errorf("%w: no MAC verifies under the configured keys; it was forged or altered, or written with an identity this configuration does not hold", ErrUnauthenticated)
}

// Records outside snapshots/ (the PostgreSQL change chains under pitr/) are authenticated with
// the same keys, over a message that starts with recordLabel (no manifest's JSON does, so a
// manifest MAC never verifies as a record's) and names the record's path: a record copied to
// another name (another segment, another chain) no longer verifies.
const recordLabel = "tracevault record authentication v1\x00"

// recordAuthError is a record's ErrUnauthenticated, worded for records.
type recordAuthError string

func (e recordAuthError) Error() string { return string(e) }

func (e recordAuthError) Is(target error) bool { return target == ErrUnauthenticated }

// ErrRecordUnauthenticated is ErrUnauthenticated for a record; ErrNoRecordMAC means a record in an
// encrypted repository carries no MAC at all: written by a tracevault from before such records
// were authenticated, or by someone without the keys.
var (
	ErrRecordUnauthenticated error = recordAuthError("record is not authenticated")
	ErrNoRecordMAC                 = fmt.Errorf("%w: it carries no MAC", ErrRecordUnauthenticated)
)

// recordMAC is the MAC of rec (its own MACs cleared by the caller) stored at name, over the
// same decoded-then-encoded form as manifestMAC and for the same reason.
func recordMAC[T any](key []byte, name string, rec *T) (string, error) {
	b, err := json.Marshal(rec)
	if err != nil {
		return "", err
	}
	var decoded T
	if err := json.Unmarshal(b, &decoded); err != nil {
		return "", err
	}
	if b, err = json.Marshal(&decoded); err != nil {
		return "", err
	}
	h := hmac.New(sha256.New, key)
	h.Write([]byte(recordLabel))
	h.Write([]byte(name))
	h.Write([]byte{0})
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil)), nil
}

// SignRecord returns the MACs of rec, whose own MACs must be cleared, to be stored at name; none
// in a plaintext repository.
func SignRecord[T any](r *Repository, name string, rec *T) ([]ManifestMAC, error) {
	if !r.cfg.Encrypted {
		return nil, nil
	}
	var auth []ManifestMAC
	for _, k := range r.authKeys {
		mac, err := recordMAC(k.key, name, rec)
		if err != nil {
			return nil, fmt.Errorf("authenticate %s: %w", name, err)
		}
		auth = append(auth, ManifestMAC{Key: k.id, MAC: mac})
	}
	return auth, nil
}

// AuthenticateRecord checks auth, read with rec (whose own MACs must be cleared) from name. A
// plaintext repository authenticates nothing; in an encrypted one, a record without a MAC is
// ErrNoRecordMAC and one whose MACs do not verify ErrUnauthenticated.
func AuthenticateRecord[T any](r *Repository, name string, rec *T, auth []ManifestMAC) error {
	if !r.cfg.Encrypted {
		return nil
	}
	if len(auth) == 0 {
		return ErrNoRecordMAC
	}
	for _, a := range auth {
		for _, k := range r.authKeys {
			if a.Key != k.id {
				continue
			}
			mac, err := recordMAC(k.key, name, rec)
			if err == nil && hmac.Equal([]byte(mac), []byte(a.MAC)) {
				return nil
			}
		}
	}
	return fmt.Errorf("%w: no MAC verifies under the configured keys for this name; it was forged, altered or copied from another record, or written with an identity this configuration does not hold", ErrRecordUnauthenticated)
}
