package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"runtime"
	"sync"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"
)

// codec turns plaintext into stored bytes and back: zstd, then age when the repository is
// encrypted. Compression comes first because ciphertext does not compress.
type codec struct {
	level      zstd.EncoderLevel
	recipients []age.Recipient
	identities []age.Identity
	// encoders are finished zstd streams kept for the next object: each holds a history of
	// twice its window, and a backup storing many objects (a blob pack every 32 MiB) would
	// otherwise allocate one per object and leave the last ones for the collector. One pool
	// without frame checksums (objects), one with (documents).
	encoders [2]sync.Pool
}

// zstd keeps a history of twice its window per stream, so the window is most of a stream's
// memory, paid once per concurrent upload (four blob packs and the listing: five). The fast
// levels (1, the default, to 5) keep one position per hash bucket, overwritten within about a
// MiB of input, so they find almost nothing further back: 2 MiB instead of 8 costs 0.16% of
// the ratio at level 1 and 0.25% at 3 on Go source, nothing on Langfuse events, and 48 MiB of
// heap for a blob backup. The better levels reach further (0.9% at 6, 1.5% at 11) and whoever
// chose them chose ratio: they keep 8 MiB. Decoders accept any window up to 64 MiB, so objects
// written with either read the same.
func (c *codec) window() int {
	if c.level >= zstd.SpeedBetterCompression {
		return 8 << 20
	}
	return 2 << 20
}

// encode returns a reader of an object's stored bytes for src; sum and size are valid once it
// hit EOF. The frame carries no checksum of its own: every read of an object checks the SHA-256
// of its plaintext against its reference, and zstd's (xxhash64 of the same bytes) cost 6% of
// the compression's CPU and 10% of the decompression's on a Native export of Langfuse v4's
// events_full.
func (c *codec) encode(src io.Reader) (io.ReadCloser, *digest) {
	return c.encodeStream(src, false)
}

// encodeDocument returns the stored bytes of a document (a manifest, a run record). Its frame
// keeps zstd's checksum: nothing else records a document's digest, and in a plaintext
// repository nothing authenticates it, so the checksum is what finds a damaged one.
func (c *codec) encodeDocument(b []byte) io.ReadCloser {
	rc, _ := c.encodeStream(bytes.NewReader(b), true)
	return rc
}

func (c *codec) encodeStream(src io.Reader, checksum bool) (io.ReadCloser, *digest) {
	pr, pw := io.Pipe()
	d := newDigest()
	go func() {
		pw.CloseWithError(c.encodeTo(pw, io.TeeReader(src, d), checksum))
	}()
	return pr, d
}

func (c *codec) encodeTo(dst io.Writer, src io.Reader, checksum bool) error {
	out := dst
	var enc io.WriteCloser
	if len(c.recipients) > 0 {
		w, err := age.Encrypt(dst, c.recipients...)
		if err != nil {
			return fmt.Errorf("start encryption: %w", err)
		}
		enc, out = w, w
	}
	pool := &c.encoders[0]
	if checksum {
		pool = &c.encoders[1]
	}
	zw, _ := pool.Get().(*zstd.Encoder)
	if zw != nil {
		zw.Reset(out)
	} else {
		var err error
		zw, err = zstd.NewWriter(out, zstd.WithEncoderLevel(c.level), zstd.WithWindowSize(c.window()),
			zstd.WithEncoderConcurrency(min(2, runtime.GOMAXPROCS(0))), zstd.WithEncoderCRC(checksum))
		if err != nil {
			return fmt.Errorf("start compression: %w", err)
		}
	}
	if _, err := zw.ReadFrom(src); err != nil {
		zw.Close()
		return err
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("finish compression: %w", err)
	}
	// Only a stream that finished cleanly goes back: a failed one is dropped with its state.
	pool.Put(zw)
	if enc != nil {
		if err := enc.Close(); err != nil {
			return fmt.Errorf("finish encryption: %w", err)
		}
	}
	return nil
}

// decode returns the plaintext of stored bytes.
func (c *codec) decode(stored io.Reader) (io.ReadCloser, error) {
	in := stored
	if len(c.identities) > 0 {
		r, err := age.Decrypt(stored, c.identities...)
		if err != nil {
			return nil, fmt.Errorf("decrypt: %w", err)
		}
		in = r
	}
	zr, err := zstd.NewReader(in, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true), zstd.WithDecoderMaxWindow(64<<20))
	if err != nil {
		return nil, fmt.Errorf("start decompression: %w", err)
	}
	return zr.IOReadCloser(), nil
}

func newDigest() *digest { return &digest{h: sha256.New()} }

// digest hashes and counts the plaintext as it streams by.
type digest struct {
	h    hash.Hash
	size int64
}

func (d *digest) Write(p []byte) (int, error) {
	d.size += int64(len(p))
	return d.h.Write(p)
}

func (d *digest) sum() string { return hex.EncodeToString(d.h.Sum(nil)) }

// ErrCorrupt means an object's content does not match its recorded checksum or size.
var ErrCorrupt = errors.New("object is corrupt")

// verifier checks the plaintext against the manifest at EOF, so a reader never sees a clean EOF
// on a damaged object.
type verifier struct {
	r      io.ReadCloser
	close  func() error
	d      *digest
	want   ObjectRef
	name   string
	failed error
}

func (v *verifier) Read(p []byte) (int, error) {
	if v.failed != nil {
		return 0, v.failed
	}
	n, err := v.r.Read(p)
	v.d.Write(p[:n])
	switch {
	case errors.Is(err, io.EOF):
		if v.d.size != v.want.RawSize || v.d.sum() != v.want.SHA256 {
			v.failed = fmt.Errorf("read %s: %w: sha256 %s and %d bytes, manifest says %s and %d bytes", v.name, ErrCorrupt, v.d.sum(), v.d.size, v.want.SHA256, v.want.RawSize)
			return n, v.failed
		}
	case err != nil:
		v.failed = fmt.Errorf("read %s: %w", v.name, err)
		return n, v.failed
	}
	return n, err
}

func (v *verifier) Close() error {
	err := v.r.Close()
	if cerr := v.close(); err == nil {
		err = cerr
	}
	return err
}
