package blobs

import (
	"bytes"
	"cmp"
	"context"
	"crypto/md5"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/tracevault/tracevault/snapshot"
	"github.com/tracevault/tracevault/snapshot/store"
)

// Name is the source's name in a snapshot set, its manifest section and `only`.
const Name = "blobs"

// Object kinds in the manifest: one listing per snapshot, and the packs its blobs live in.
const (
	KindListing = "blob-listing"
	KindPack    = "blob-pack"
)

// Source backs up a blob container.
//
// Content is stored in packs: repository objects of about PackSize, each the plain concatenation
// of the blobs one worker read, so a million small blobs are a few dozen manifest objects, not a
// million. The listing says where each blob's bytes are (pack key and offset). A blob whose name,
// size and MD5 (or, where the container keeps no MD5, ETag) match the previous snapshot's listing
// is not read at all: its record points at the pack that already holds it, and that pack is
// referenced again. So an unchanged container costs one listing pass and sends 0 data bytes.
//
// Packs are never rewritten: a pack stays while any kept snapshot's listing points into it,
// including its bytes of blobs since deleted.
type Source struct {
	URL         string
	Credentials Credentials
	// Workers read blobs in parallel, each filling its own pack (default 4). Memory is bounded
	// by Workers times one compression stream (a zstd history of twice the store's window: 4
	// MiB at the default level) plus its upload buffers, whatever the container's size.
	Workers  int
	PackSize int64 // default 32 MiB
	// CopyMin is the smallest blob copied server-side when source and repository are both on
	// Azure and the repository is not encrypted (servercopy.go): 0 means DefaultCopyMin, a
	// negative value never copies.
	CopyMin int64
	// FileLog, when set, streams the paths ClickHouse's blob_storage_file_log references, for
	// the consistency check the section records.
	FileLog FileLog
	Log     *slog.Logger
	// open replaces OpenContainer in tests that inject failures.
	open func(ctx context.Context, url string, cred Credentials, create bool) (Container, error)
}

// Section is the manifest's record of a blob backup.
type Section struct {
	URL      string `json:"url"`
	Blobs    int64  `json:"blobs"`
	Bytes    int64  `json:"bytes"`     // of every blob in the listing
	NewBlobs int64  `json:"new_blobs"` // read from the container by this snapshot
	NewBytes int64  `json:"new_bytes"`
	Packs    int    `json:"packs"` // new packs
	// Copied blobs are the part of the new ones the storage service copied server-side, each
	// into its own raw object: their bytes did not pass through tracevault.
	Copied      int64 `json:"copied,omitempty"`
	CopiedBytes int64 `json:"copied_bytes,omitempty"`
	// Base is the snapshot whose listing unchanged blobs were matched against.
	Base  string `json:"base,omitempty"`
	Cut   Cut    `json:"cut"`
	Check *Check `json:"check,omitempty"`
}

// Cut is the moment the listing stands for: every blob written before Time that was not deleted
// is in it; blobs written while it ran may or may not be. Newest is the most recently modified
// blob listed, the last event a restore brings back.
type Cut struct {
	Time           time.Time `json:"time"`
	Newest         string    `json:"newest,omitempty"`
	NewestModified time.Time `json:"newest_modified,omitzero"`
}

func (s *Source) Name() string { return Name }

// slot is one listed blob on its way to the listing, which records blobs in listing order
// whichever worker finishes first.
type slot struct {
	rec  Record
	skip bool // deleted between the listing and the read
	err  error
	done chan struct{}
	// listedMD5 is the Content-MD5 the listing claims, which only a server-side copy uses: the
	// service checks the bytes it copies against it.
	listedMD5 []byte
	// A small blob read ahead: its bytes and what the read said of it.
	prefetched bool
	data       []byte
	got        Entry
}

// window bounds the blobs between the lister and the listing writer: the memory of the ordered
// pipeline, whatever the container's size.
const window = 4096

// Backup lists the container, stores the blobs the repository does not hold and the listing.
//
// The blobs flow through a pipeline: the lister (list) hands every listed blob to the listing
// writer in listing order, and those it must read to the fetchers (fetchAll), which copy them
// server-side or read small ones ahead; the packers (packAll) append the rest to their packs.
func (s *Source) Backup(ctx context.Context, w *snapshot.Writer) (any, error) {
	if s.Log == nil {
		s.Log = slog.Default()
	}
	workers, packSize := s.sizes()
	c, err := s.openContainer(ctx)
	if err != nil {
		return nil, err
	}
	sec := &Section{URL: c.String()}
	base, err := openBase(ctx, w.Repository(), sec.URL)
	if err != nil {
		return nil, err
	}
	defer base.Close()
	sec.Base = base.id
	check := newChecker(s.FileLog, urlPrefix(s.URL))

	var fresh counts
	cp := newCopier(w, c, cmp.Or(s.CopyMin, DefaultCopyMin), s.Log, &fresh)
	g, gctx := errgroup.WithContext(ctx)
	order := make(chan *slot, window)
	work := make(chan *slot, window)
	// reused are the packs of unchanged blobs, with the blob's name for a copied blob's own
	// object, so that verify names it; written by the lister only.
	reused := map[string]string{}
	check.begin(ctx) // before the cut: the check holds the listing against rows committed before it
	sec.Cut.Time = time.Now().UTC()
	g.Go(func() error { return list(gctx, c, base, order, work, reused) })
	fetched := fetchAll(gctx, g, c, cp, work, workers)
	packs := s.packAll(gctx, g, w, c, fetched, workers, packSize, &fresh)
	g.Go(func() error { return s.writeListing(gctx, w, order, sec, &fresh, check) })
	err = g.Wait()
	for range workers {
		sec.Packs += <-packs
	}
	sec.NewBlobs, sec.NewBytes = fresh.blobs.Load(), fresh.bytes.Load()
	sec.Copied, sec.CopiedBytes = cp.counts()
	if err != nil {
		return sec, err
	}
	if err := referenceReused(ctx, w, reused); err != nil {
		return sec, err
	}
	sec.Check = check.result()
	s.logBackup(sec)
	return sec, nil
}

// sizes are the number of packers and the size of a pack, defaults applied.
func (s *Source) sizes() (workers int, packSize int64) {
	workers, packSize = s.Workers, s.PackSize
	if workers <= 0 {
		workers = 4
	}
	if packSize <= 0 {
		packSize = 32 << 20
	}
	return workers, packSize
}

// openContainer opens the container to back up, through the tests' opener where one is set.
func (s *Source) openContainer(ctx context.Context) (Container, error) {
	open := OpenContainer
	if s.open != nil {
		open = s.open
	}
	return open(ctx, s.URL, s.Credentials, false)
}

// list lists the container: every blob goes to order, in listing order, and the blobs that must
// be read also to work. It closes both when the listing ends.
func list(ctx context.Context, c Container, base *base, order, work chan<- *slot, reused map[string]string) error {
	defer close(order)
	defer close(work)
	return c.List(ctx, func(e Entry) error {
		sl, err := listed(e, base, reused)
		if err != nil {
			return err
		}
		return dispatch(ctx, sl, order, work)
	})
}

// listed makes a listed blob's slot. It is done at once where nothing needs reading: a blob the
// previous listing holds unchanged (its record points at the pack that holds it, which joins
// reused) or an empty one.
func listed(e Entry, base *base, reused map[string]string) (*slot, error) {
	sl := &slot{rec: Record{Name: e.Name, Size: e.Size, ETag: e.ETag, Modified: e.Modified}, done: make(chan struct{}), listedMD5: e.MD5}
	prev, err := base.find(e.Name)
	if err != nil {
		return nil, err
	}
	switch {
	case prev != nil && unchanged(*prev, e):
		sl.rec.MD5, sl.rec.Pack, sl.rec.Offset = prev.MD5, prev.Pack, prev.Offset
		if prev.Pack != "" {
			reused[prev.Pack] = base.copied[prev.Pack]
		}
		close(sl.done)
	case e.Size == 0:
		sl.rec.MD5 = md5.Sum(nil)
		close(sl.done)
	}
	return sl, nil
}

// dispatch sends a slot to the listing writer and, unless it is done already, to the fetchers.
func dispatch(ctx context.Context, sl *slot, order, work chan<- *slot) error {
	select {
	case order <- sl:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-sl.done:
		return nil
	default:
	}
	select {
	case work <- sl:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// fetchAll starts the fetchers and returns what they hand on to the packers, closed once they
// are all done. Small blobs cost a round trip each, not bandwidth: fetchers read them ahead into
// memory (at most fetchers+workers of them, each under prefetchMax) for the packers to append.
func fetchAll(ctx context.Context, g *errgroup.Group, c Container, cp *copier, work <-chan *slot, workers int) <-chan *slot {
	fetched := make(chan *slot, workers)
	fetchers := workers * 8
	var fetching sync.WaitGroup
	for range fetchers {
		fetching.Go(func() { fetch(ctx, c, cp, work, fetched) })
	}
	g.Go(func() error { fetching.Wait(); close(fetched); return nil })
	return fetched
}

// fetch is one fetcher: a blob the storage service can copy server-side is done here, a small one
// is read ahead, and every other is handed to the packers as it is.
func fetch(ctx context.Context, c Container, cp *copier, work <-chan *slot, fetched chan<- *slot) {
	for sl := range work {
		if cp.wants(sl) && cp.copy(ctx, sl) {
			close(sl.done)
			continue
		}
		if sl.rec.Size <= prefetchMax {
			if err := prefetch(ctx, c, sl); err != nil {
				sl.err = err
				close(sl.done)
				continue
			}
		}
		select {
		case fetched <- sl:
		case <-ctx.Done():
			sl.err = ctx.Err()
			close(sl.done)
		}
	}
}

// packAll starts the packers, one pack at a time each; each sends how many packs it stored on
// the returned channel when it ends.
func (s *Source) packAll(ctx context.Context, g *errgroup.Group, w *snapshot.Writer, c Container, fetched <-chan *slot, workers int, packSize int64, fresh *counts) <-chan int {
	packs := make(chan int, workers)
	for range workers {
		g.Go(func() error {
			p := &packer{w: w, c: c, size: packSize, fresh: fresh, log: s.Log}
			defer func() { packs <- p.packs }()
			return p.run(ctx, fetched)
		})
	}
	return packs
}

// referenceReused references the unchanged blobs' packs again, so that prune keeps them.
func referenceReused(ctx context.Context, w *snapshot.Writer, reused map[string]string) error {
	for key, blob := range reused {
		if _, err := w.Put(ctx, store.ManifestObject{Kind: KindPack, Partition: blob}, packFingerprint(key), missingPack{key}); err != nil {
			return err
		}
	}
	return nil
}

// logBackup says what the backup read and stored, and warns when blob_storage_file_log names
// files the container does not hold.
func (s *Source) logBackup(sec *Section) {
	s.Log.Info("blob container backed up", "container", sec.URL, "blobs", sec.Blobs, "bytes", sec.Bytes,
		"new_blobs", sec.NewBlobs, "new_bytes", sec.NewBytes, "copied", sec.Copied, "copied_bytes", sec.CopiedBytes, "packs", sec.Packs, "cut", sec.Cut.Time)
	if sec.Check != nil && (sec.Check.Missing > 0 || sec.Check.Error != "") {
		s.Log.Warn("blob_storage_file_log names files the container does not hold", "table", sec.Check.Table,
			"missing", sec.Check.Missing, "examples", sec.Check.MissingExamples, "err", sec.Check.Error)
	}
}

// unchanged says whether a listed blob is the previous snapshot's record: same name, size and
// ETag, which the server changes on every write, properties included. The listed Content-MD5
// alone is not trusted: any writer can set it (Set Blob Properties, or a block-list commit) to
// any value, so content could change under an unchanged MD5; it can only disprove a match.
func unchanged(prev Record, e Entry) bool {
	if prev.Name != e.Name || prev.Size != e.Size || e.ETag == "" || e.ETag != prev.ETag {
		return false
	}
	return len(e.MD5) != md5.Size || bytes.Equal(e.MD5, prev.MD5[:])
}

// writeListing records the blobs in listing order as workers finish them, into one object.
func (s *Source) writeListing(ctx context.Context, w *snapshot.Writer, order <-chan *slot, sec *Section, fresh *counts, check *checker) error {
	pr, pw := io.Pipe()
	stored := make(chan error, 1)
	go func() {
		_, err := w.Put(ctx, store.ManifestObject{Kind: KindListing}, "", pr)
		pr.CloseWithError(err)
		stored <- err
	}()
	err := s.records(ctx, pw, order, sec, fresh, check)
	pw.CloseWithError(err)
	if perr := <-stored; err == nil {
		err = perr
	}
	if err != nil {
		// Drain, so the lister and workers are not left blocked on a full channel.
		go func() {
			for range order {
			}
		}()
	}
	return err
}

func (s *Source) records(ctx context.Context, dst io.Writer, order <-chan *slot, sec *Section, fresh *counts, check *checker) error {
	lw, err := NewListingWriter(dst)
	if err != nil {
		return err
	}
	last := time.Now()
	for sl := range order {
		select {
		case <-sl.done:
		case <-ctx.Done():
			return ctx.Err()
		}
		if sl.err != nil {
			return sl.err
		}
		if sl.skip {
			continue
		}
		if err := lw.Write(sl.rec); err != nil {
			return err
		}
		if err := check.observe(ctx, sl.rec.Name); err != nil {
			return err
		}
		sec.Blobs++
		sec.Bytes += sl.rec.Size
		if sl.rec.Modified.After(sec.Cut.NewestModified) {
			sec.Cut.Newest, sec.Cut.NewestModified = sl.rec.Name, sl.rec.Modified
		}
		if time.Since(last) > 10*time.Second {
			s.Log.Info("listing blobs", "container", sec.URL, "blobs", sec.Blobs, "new_blobs", fresh.blobs.Load(), "new_bytes", fresh.bytes.Load())
			last = time.Now()
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := check.finish(ctx); err != nil {
		return err
	}
	return lw.Close()
}

// counts are the blobs read from the container, which every worker adds to.
type counts struct{ blobs, bytes atomic.Int64 }
