package blobs

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/tracevault/tracevault/snapshot"
	"github.com/tracevault/tracevault/snapshot/store"
)

// packer is one worker's pack: blobs appended to a stream the repository is storing.
type packer struct {
	w     *snapshot.Writer
	c     Container
	size  int64
	packs int
	fresh *counts
	log   *slog.Logger

	key    string
	buf    []byte
	pw     *io.PipeWriter
	off    int64
	stored chan error
}

// run appends the fetched blobs to the packer's packs until there are no more, then stores the
// last one.
func (p *packer) run(ctx context.Context, fetched <-chan *slot) error {
	for sl := range fetched {
		sl.err = p.add(ctx, sl)
		close(sl.done)
		if sl.err != nil {
			p.abort(sl.err)
			return sl.err
		}
	}
	return p.finish()
}

// prefetchMax is the largest blob a fetcher reads ahead into memory.
const prefetchMax = 256 << 10

// prefetch reads a small blob whole; a blob deleted since the listing is skipped.
func prefetch(ctx context.Context, c Container, sl *slot) error {
	sl.prefetched = true
	rc, got, err := c.Open(ctx, sl.rec.Name)
	if errors.Is(err, store.ErrNotFound) {
		sl.skip = true
		return nil
	}
	if err != nil {
		return err
	}
	defer rc.Close()
	// Rewritten since the listing, it may have grown: read at most one byte past the limit and
	// let the packer stream it instead.
	data, err := io.ReadAll(io.LimitReader(rc, prefetchMax+1))
	if err != nil {
		return fmt.Errorf("read blob %s from %s: %w", sl.rec.Name, c, err)
	}
	if len(data) > prefetchMax {
		sl.prefetched = false
		return nil
	}
	sl.data, sl.got = data, got
	return nil
}

func (p *packer) add(ctx context.Context, sl *slot) error {
	if sl.skip {
		return nil
	}
	var body io.Reader
	got := sl.got
	if sl.prefetched {
		body = bytes.NewReader(sl.data)
		defer func() { sl.data = nil }()
	} else {
		rc, g, err := p.c.Open(ctx, sl.rec.Name)
		if errors.Is(err, store.ErrNotFound) {
			sl.skip = true // deleted since the listing: the listing says what was there when read
			return nil
		}
		if err != nil {
			return err
		}
		defer rc.Close()
		body, got = rc, g
	}
	if p.pw == nil {
		p.start(ctx)
	}
	h := md5.New()
	if p.buf == nil {
		p.buf = make([]byte, 32<<10)
	}
	// One buffer per packer: io.Copy would allocate 32 KiB per blob (neither side has a
	// ReadFrom/WriteTo), gigabytes of garbage for a million blobs.
	n, err := io.CopyBuffer(p.pw, io.TeeReader(body, h), p.buf)
	if err != nil {
		return fmt.Errorf("copy blob %s from %s into pack %s: %w", sl.rec.Name, p.c, p.key, err)
	}
	r := &sl.rec
	copy(r.MD5[:], h.Sum(nil))
	if len(got.MD5) == md5.Size && !bytes.Equal(got.MD5, r.MD5[:]) {
		// A wrong Content-MD5 is a property any writer can set; what was read is what the
		// snapshot holds, and the listing records its real MD5.
		p.log.Warn("blob content does not match its Content-MD5; storing what was read", "blob", r.Name, "container", p.c.String(),
			"read_md5", hex.EncodeToString(r.MD5[:]), "content_md5", hex.EncodeToString(got.MD5))
	}
	// Rewritten since the listing: record what was read.
	if got.ETag != "" {
		r.ETag, r.Modified = got.ETag, got.Modified
	}
	r.Size, r.Offset = n, p.off
	if n == 0 {
		r.Offset = 0
		return nil
	}
	r.Pack = p.key
	p.off += n
	p.fresh.blobs.Add(1)
	p.fresh.bytes.Add(n)
	if p.off >= p.size {
		return p.finish()
	}
	return nil
}

func (p *packer) start(ctx context.Context) {
	p.key, p.off = newPackKey(), 0
	pr, pw := io.Pipe()
	p.pw, p.stored = pw, make(chan error, 1)
	go func() {
		_, err := p.w.Put(ctx, store.ManifestObject{Kind: KindPack}, packFingerprint(p.key), pr)
		pr.CloseWithError(err)
		p.stored <- err
	}()
}

// finish closes the pack and waits until the repository holds it.
func (p *packer) finish() error {
	if p.pw == nil {
		return nil
	}
	p.pw.Close()
	err := <-p.stored
	p.pw = nil
	if err == nil {
		p.packs++
	}
	return err
}

// abort stops a pack that must not be stored.
func (p *packer) abort(err error) {
	if p.pw != nil {
		p.pw.CloseWithError(err)
		<-p.stored
		p.pw = nil
	}
}

func newPackKey() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// A pack's fingerprint is its key behind packPrefix: what restore and the next backup find it by.
const packPrefix = "blobpack:"

func packFingerprint(key string) string { return packPrefix + key }

// packKey returns the key of the pack whose fingerprint is fingerprint.
func packKey(fingerprint string) (string, bool) { return strings.CutPrefix(fingerprint, packPrefix) }

// missingPack is the body of a pack that an earlier snapshot stored and the repository no longer
// holds: reading it fails the backup instead of storing an empty pack.
type missingPack struct{ key string }

func (m missingPack) Read([]byte) (int, error) {
	return 0, fmt.Errorf("pack %s of an earlier snapshot is missing or damaged ('tracevault verify' names it); delete the snapshots that reference it, and the next backup reads those blobs again", m.key)
}
