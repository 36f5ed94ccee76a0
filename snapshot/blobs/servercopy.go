package blobs

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/tracevault/tracevault/snapshot"
	"github.com/tracevault/tracevault/snapshot/store"
)

// DefaultCopyMin is the smallest blob copied server-side by default. Smaller blobs are packed:
// a copy is one repository object and one manifest entry per blob, and a round trip each, which
// only pays for large blobs.
const DefaultCopyMin = 8 << 20

// urlSource is a container whose blobs the repository's storage service can read by URL.
type urlSource interface {
	readURL(ctx context.Context, name string) (string, error)
}

// copyURLTTL is how long a copy's read SAS lives: one synchronous copy of at most
// store.MaxServerCopy bytes, with the SDK's retries.
const copyURLTTL = time.Hour

func (z *azureContainer) readURL(ctx context.Context, name string) (string, error) {
	return z.a.ReadURL(ctx, z.prefix+name, copyURLTTL)
}

// maxCopyFailures turns copying off for the rest of a backup after that many failures in a
// row: a storage service that cannot reach the source fails every copy, and each costs a round
// trip and a warning before the blob is streamed anyway.
const maxCopyFailures = 5

// copier copies a backup's large blobs from the source container into the repository on the
// storage service's side, each into a raw object that is a pack of one blob. A copy is proven
// by the service: it compares the bytes it read with the listed Content-MD5. A blob without a
// listed MD5 cannot be proven so and is streamed, as is any blob whose copy fails.
type copier struct {
	w        *snapshot.Writer
	src      urlSource
	min      int64
	log      *slog.Logger
	fresh    *counts
	copied   counts
	failures atomic.Int32 // in a row
	off      atomic.Bool
}

// newCopier returns nil when no blob of this backup can be copied, having said why.
func newCopier(w *snapshot.Writer, c Container, minSize int64, log *slog.Logger, fresh *counts) *copier {
	src, ok := c.(urlSource)
	if minSize < 0 || !ok {
		return nil
	}
	if err := w.Repository().ServerCopy(); err != nil {
		log.Info("blobs are streamed through tracevault, not copied server-side", "container", c.String(), "reason", err)
		return nil
	}
	return &copier{w: w, src: src, min: max(minSize, 1), log: log, fresh: fresh}
}

func (cp *copier) wants(sl *slot) bool {
	return cp != nil && !cp.off.Load() && sl.rec.Size >= cp.min && sl.rec.Size <= store.MaxServerCopy && len(sl.listedMD5) == len(sl.rec.MD5)
}

// copy copies sl's blob and fills its record; false means the blob must be streamed.
func (cp *copier) copy(ctx context.Context, sl *slot) bool {
	r := &sl.rec
	u, err := cp.src.readURL(ctx, r.Name)
	key := newPackKey()
	if err == nil {
		_, err = cp.w.Copy(ctx, store.ManifestObject{Kind: KindPack, Partition: r.Name}, packFingerprint(key),
			store.CopySource{URL: u, Size: r.Size, MD5: sl.listedMD5})
	}
	if err != nil {
		if ctx.Err() != nil {
			return false
		}
		cp.log.Warn("server-side copy failed; streaming the blob through tracevault instead", "blob", r.Name, "err", err)
		if n := cp.failures.Add(1); (n >= maxCopyFailures || errors.Is(err, store.ErrNoServerCopy)) && !cp.off.Swap(true) {
			cp.log.Warn("server-side copy turned off for the rest of this backup", "failures_in_a_row", n, "err", err)
		}
		return false
	}
	cp.failures.Store(0)
	copy(r.MD5[:], sl.listedMD5)
	r.Pack, r.Offset = key, 0
	cp.fresh.blobs.Add(1)
	cp.fresh.bytes.Add(r.Size)
	cp.copied.blobs.Add(1)
	cp.copied.bytes.Add(r.Size)
	return true
}

// counts returns what was copied; a nil copier copied nothing.
func (cp *copier) counts() (blobs, bytes int64) {
	if cp == nil {
		return 0, 0
	}
	return cp.copied.blobs.Load(), cp.copied.bytes.Load()
}
