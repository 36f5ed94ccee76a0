package store

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"regexp"

	"github.com/tracevault/tracevault/snapshot/progress"
)

// A raw object holds a source's bytes as they are: no compression, no encryption, checked by the
// MD5 of those bytes instead of a SHA-256. It is what a server-side copy produces, since the
// storage service copies bytes and cannot run the codec. Only an unencrypted repository holds
// raw objects: an encrypted one must never store plaintext.
const FormatRaw = "raw"

var md5Form = regexp.MustCompile(`^[0-9a-f]{32}$`)

// CopySource is what a server-side copy reads: a URL the storage service itself can read (a
// SAS URL), and the size and MD5 the copied bytes must have.
type CopySource struct {
	URL  string
	Size int64
	MD5  []byte
}

// ServerCopier is the optional capability of a backend whose storage service can fill an object
// from a URL itself, so the bytes never pass through tracevault (Azure's Put Block From URL).
// CopyFromURL returns only once name holds exactly src.Size bytes, whose MD5 the service
// compared with src.MD5 as it read them: a source whose bytes differ from that MD5 (a forged
// Content-MD5, a rewrite) fails the copy rather than storing them.
type ServerCopier interface {
	CopyFromURL(ctx context.Context, name string, src CopySource) error
}

// ErrNoServerCopy means a server-side copy is not possible here; the caller streams instead.
var ErrNoServerCopy = errors.New("server-side copy is not possible")

// ServerCopy returns nil if CopyObject can work on this repository, or why it cannot.
func (r *Repository) ServerCopy() error {
	if r.cfg.Encrypted {
		return fmt.Errorf("%w: the repository is encrypted, and the storage service can only copy plaintext", ErrNoServerCopy)
	}
	if _, ok := r.b.(ServerCopier); !ok {
		return fmt.Errorf("%w: the repository %s cannot fill an object from a URL", ErrNoServerCopy, r.b)
	}
	return nil
}

// CopyObject stores a raw object filled by the storage service from src (see ServerCopier),
// under fingerprint like PutObject. The object's MD5 is src.MD5, which the service proved.
func (r *Repository) CopyObject(ctx context.Context, fingerprint string, src CopySource) (ObjectRef, error) {
	if err := r.ServerCopy(); err != nil {
		return ObjectRef{}, err
	}
	if len(src.MD5) != md5.Size || src.Size <= 0 {
		return ObjectRef{}, fmt.Errorf("%w: a copy needs the source's size and MD5 (%d bytes, md5 %x)", ErrNoServerCopy, src.Size, src.MD5)
	}
	ref := ObjectRef{ID: newID(), Fingerprint: fingerprint, Size: src.Size, RawSize: src.Size, Format: FormatRaw, MD5: hex.EncodeToString(src.MD5)}
	if err := r.b.(ServerCopier).CopyFromURL(ctx, ref.Name(), src); err != nil {
		return ObjectRef{}, err
	}
	if fingerprint != "" {
		if err := r.loadIndex(ctx); err != nil {
			return ObjectRef{}, err
		}
		r.remember(fingerprint, ref)
	}
	return ref, nil
}

// checkForm checks what a reader needs of an object's checksum fields, for its format.
func (o ObjectRef) checkForm() error {
	switch o.Format {
	case "":
		if sha256Form.MatchString(o.SHA256) && o.Size >= 0 && o.RawSize >= 0 && o.MD5 == "" {
			return nil
		}
	case FormatRaw:
		if md5Form.MatchString(o.MD5) && o.SHA256 == "" && o.Size >= 0 && o.RawSize == o.Size {
			return nil
		}
	default:
		return fmt.Errorf("format %.20q is unknown: written by a newer tracevault", o.Format)
	}
	return fmt.Errorf("sha256 %.80q, md5 %.40q, size %d, raw size %d are not what tracevault writes for format %q", o.SHA256, o.MD5, o.Size, o.RawSize, o.Format)
}

// openRaw reads a raw object, failing at its end unless its bytes have the recorded size and MD5.
func (r *Repository) openRaw(ctx context.Context, ref ObjectRef) (io.ReadCloser, error) {
	if r.cfg.Encrypted {
		// Never written by tracevault into an encrypted repository; the manifest's
		// authentication would have to have been bypassed.
		return nil, fmt.Errorf("read %s: %w: a raw (unencrypted) object in an encrypted repository", ref.Name(), ErrCorrupt)
	}
	stored, err := r.b.Get(ctx, ref.Name(), 0, -1)
	if err != nil {
		return nil, err
	}
	v := &md5Verifier{rc: stored, h: md5.New(), want: ref}
	return progress.ReadCloser(progress.From(ctx), v, progress.Unit{Object: ref.ID}, true), nil
}

// md5Verifier is the raw format's verifier: the reader never sees a clean EOF on a damaged object.
type md5Verifier struct {
	rc     io.ReadCloser
	h      hash.Hash
	n      int64
	want   ObjectRef
	failed error
}

func (v *md5Verifier) Read(p []byte) (int, error) {
	if v.failed != nil {
		return 0, v.failed
	}
	n, err := v.rc.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	switch {
	case errors.Is(err, io.EOF):
		if got := hex.EncodeToString(v.h.Sum(nil)); v.n != v.want.RawSize || got != v.want.MD5 {
			v.failed = fmt.Errorf("read %s: %w: md5 %s and %d bytes, manifest says %s and %d bytes", v.want.Name(), ErrCorrupt, got, v.n, v.want.MD5, v.want.RawSize)
			return n, v.failed
		}
	case err != nil:
		v.failed = fmt.Errorf("read %s: %w", v.want.Name(), err)
		return n, v.failed
	}
	return n, err
}

func (v *md5Verifier) Close() error { return v.rc.Close() }
