package blobs

import (
	"bytes"
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"golang.org/x/sync/errgroup"

	"github.com/tracevault/tracevault/snapshot/store"
)

// RestoreOptions say where a blob restore goes and what it may overwrite.
type RestoreOptions struct {
	// URL is the target container (azblob://container[/prefix] or file:///dir), created if
	// missing; empty restores into the container the snapshot was taken from.
	URL         string
	Credentials Credentials
	// Replace overwrites target blobs that differ from the snapshot's copy and were modified
	// after it (or in the same second); without it they are kept and reported.
	Replace bool
	// ReadBack reads every blob out of its pack and checks its size and MD5 without writing it
	// anywhere (URL is ignored): the repository's half of a restore, which a drill proves.
	ReadBack bool
	Workers  int // packs read in parallel (default 4)
	Log      *slog.Logger

	open func(ctx context.Context, url string, cred Credentials, create bool) (Container, error) // tests' seam; OpenContainer
}

// RestoreReport says what a blob restore did.
type RestoreReport struct {
	Snapshot     string   `json:"snapshot"`
	Target       string   `json:"target"`
	Blobs        int64    `json:"blobs"`     // in the snapshot's listing
	Written      int64    `json:"written"`   // written, each verified against its MD5
	Bytes        int64    `json:"bytes"`     // written
	Identical    int64    `json:"identical"` // already on the target with the same content
	KeptNewer    int64    `json:"kept_newer"`
	KeptExamples []string `json:"kept_examples,omitempty"`
	// Unfit are blobs whose names the target cannot hold (a directory and a name like
	// "a/../b"): left out, and the restore fails naming them.
	Unfit         int64    `json:"unfit,omitempty"`
	UnfitExamples []string `json:"unfit_examples,omitempty"`
}

// ErrNewerKept means some target blobs were modified after the snapshot's copies and were kept.
var ErrNewerKept = errors.New("target blobs newer than the snapshot's were kept")

// errUnfitName means a directory cannot hold a blob under its name.
var errUnfitName = errors.New("a directory cannot keep this name apart from others (a '.' or '..' segment, an empty segment, a leading or trailing '/', or a .tmp- file); restore into an Azure container (--blob-url azblob://...) to keep it")

// restoreWindow is how many listing records a restore plans at once: the memory bound of a
// restore, whatever the listing's length.
const restoreWindow = 20000

// smallBlob is the size up to which a blob is buffered and written in the background while the
// pack reader moves on: many small blobs are latency-bound, not bandwidth-bound.
const smallBlob = 256 << 10

// Restorer restores a snapshot's blobs, as the other sources restore: NewRestorer with the
// options, Plan, then Execute.
type Restorer struct{ o RestoreOptions }

// NewRestorer restores with o.
func NewRestorer(o RestoreOptions) *Restorer {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Workers <= 0 {
		o.Workers = 4
	}
	return &Restorer{o: o}
}

// RestorePlan is what a blob restore reads and where it writes: the snapshot's listing and
// packs, and the target container's URL.
type RestorePlan struct {
	Snapshot string
	Target   string // the URL; the report names the container as opened
	Blobs    int64  // in the listing, as the section records them
	Bytes    int64
	m        *store.Manifest
	listing  store.ObjectRef
	sec      Section
	packs    map[string]store.ObjectRef
}

// Plan finds the listing and packs of snapshot m and the target: o.URL, else the container the
// snapshot was taken from. It reads nothing.
func (r *Restorer) Plan(m *store.Manifest) (*RestorePlan, error) {
	ref, sec, ok := listingOf(m)
	if !ok {
		return nil, fmt.Errorf("snapshot %s holds no complete blob backup ('tracevault show %s' lists its sources)", m.ID, m.ID)
	}
	p := &RestorePlan{Snapshot: m.ID, Target: r.o.URL, Blobs: sec.Blobs, Bytes: sec.Bytes, m: m, listing: ref, sec: sec, packs: map[string]store.ObjectRef{}}
	for _, obj := range m.Objects {
		if key, ok := packKey(obj.Fingerprint); ok && obj.Source == Name && obj.Kind == KindPack {
			p.packs[key] = obj.ObjectRef
		}
	}
	if p.Target == "" {
		p.Target = sec.URL
	}
	return p, nil
}

// Execute writes the plan's blobs into the target container. It walks the listing in windows;
// each window is matched, in name order, against the target's own listing (identical blobs are
// skipped, newer ones kept unless Replace), and its blobs are read pack by pack, each pack once,
// in offset order. Every blob is committed only once its bytes hash to the listing's MD5. The
// report says what was done, also when it fails.
func (r *Restorer) Execute(ctx context.Context, repo *store.Repository, p *RestorePlan) (RestoreReport, error) {
	o, m, sec := r.o, p.m, p.sec
	rep := RestoreReport{Snapshot: m.ID}
	var dst Container = readBack{}
	if !o.ReadBack {
		var err error
		open := o.open
		if open == nil {
			open = OpenContainer
		}
		if dst, err = open(ctx, p.Target, o.Credentials, true); err != nil {
			return rep, err
		}
	}
	rep.Target = dst.String()
	rc, err := repo.OpenObject(ctx, p.listing)
	if err != nil {
		return rep, fmt.Errorf("read the blob listing of snapshot %s: %w", m.ID, err)
	}
	defer rc.Close()
	lr, err := NewListingReader(rc)
	if err != nil {
		return rep, fmt.Errorf("snapshot %s: %w", m.ID, err)
	}
	existing := newCursor(ctx, dst)
	defer existing.stop()
	x := &execution{repo: repo, dst: dst, packs: p.packs, o: o, rep: &rep, total: sec.Blobs, last: time.Now()}
	o.Log.Info("restoring blobs", "snapshot", m.ID, "target", rep.Target, "blobs", sec.Blobs, "bytes", sec.Bytes)
	for {
		batch, err := x.plan(ctx, lr, existing)
		if err != nil {
			return rep, err
		}
		if len(batch) == 0 {
			break
		}
		if err := x.write(ctx, batch); err != nil {
			return rep, err
		}
	}
	rep.Written, rep.Bytes = x.written.Load(), x.bytes.Load()
	if rep.Blobs != sec.Blobs || x.listedBytes != sec.Bytes {
		return rep, fmt.Errorf("snapshot %s: its blob listing holds %d blobs of %d bytes, its section says %d of %d: the manifest or the listing is damaged",
			m.ID, rep.Blobs, x.listedBytes, sec.Blobs, sec.Bytes)
	}
	o.Log.Info("blobs restored", "snapshot", m.ID, "target", rep.Target, "written", rep.Written, "bytes", rep.Bytes,
		"identical", rep.Identical, "kept_newer", rep.KeptNewer)
	var errs []error
	if rep.KeptNewer > 0 {
		errs = append(errs, fmt.Errorf("restore blobs into %s: %w: %d (e.g. %s); pass --replace to overwrite them with the snapshot's",
			rep.Target, ErrNewerKept, rep.KeptNewer, strings.Join(rep.KeptExamples, ", ")))
	}
	if rep.Unfit > 0 {
		errs = append(errs, fmt.Errorf("restore blobs into %s: %d left out (e.g. %q): %w", rep.Target, rep.Unfit, rep.UnfitExamples, errUnfitName))
	}
	return rep, errors.Join(errs...)
}

// Restore plans and executes the restore of snapshot m's blobs (see Execute).
func Restore(ctx context.Context, repo *store.Repository, m *store.Manifest, o RestoreOptions) (RestoreReport, error) {
	r := NewRestorer(o)
	p, err := r.Plan(m)
	if err != nil {
		return RestoreReport{Snapshot: m.ID}, err
	}
	return r.Execute(ctx, repo, p)
}

// readBack is a restore target that keeps nothing: each blob's bytes are checked against the
// snapshot's size and MD5, as for any target, and dropped.
type readBack struct{}

func (readBack) List(context.Context, func(Entry) error) error { return nil }

func (readBack) Open(context.Context, string) (io.ReadCloser, Entry, error) {
	return nil, Entry{}, store.ErrNotFound
}

func (readBack) Put(_ context.Context, name string, size int64, md5 []byte, r io.Reader) error {
	_, err := io.Copy(io.Discard, checked(r, name, size, md5))
	return err
}

func (readBack) String() string { return "nowhere (read back and checked only)" }

// execution is the state of one Execute.
type execution struct {
	repo  *store.Repository
	dst   Container
	packs map[string]store.ObjectRef
	o     RestoreOptions
	rep   *RestoreReport
	total int64

	written, bytes atomic.Int64
	listedBytes    int64 // of every record read, by the planner
	mu             sync.Mutex
	last           time.Time
}

// plan reads the next window of the listing and keeps the records to write. Blobs the target
// already has are compared in parallel (each comparison may read the blob).
func (r *execution) plan(ctx context.Context, lr *ListingReader, existing *cursor) ([]Record, error) {
	type present struct {
		rec  Record
		have Entry
		same bool
	}
	var out []Record
	var there []present
	for n := 0; n < restoreWindow; n++ {
		rec, err := lr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("snapshot %s: %w", r.rep.Snapshot, err)
		}
		r.rep.Blobs++
		r.listedBytes += rec.Size
		if d, ok := r.dst.(*dir); ok && d.unfit(rec.Name) != nil {
			r.rep.Unfit++
			if len(r.rep.UnfitExamples) < maxExamples {
				r.rep.UnfitExamples = append(r.rep.UnfitExamples, rec.Name)
			}
			continue
		}
		have, err := existing.find(rec.Name)
		if err != nil {
			return nil, err
		}
		if have == nil {
			out = append(out, rec)
		} else {
			there = append(there, present{rec: rec, have: *have})
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(32)
	for i := range there {
		g.Go(func() (err error) {
			there[i].same, err = r.identical(gctx, there[i].rec, there[i].have)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	for _, p := range there {
		switch {
		case p.same:
			r.rep.Identical++
		// Azure's times have whole seconds: a blob rewritten within the second the snapshot's
		// copy was written counts as newer.
		case !p.have.Modified.Before(p.rec.Modified) && !r.o.Replace:
			r.rep.KeptNewer++
			if len(r.rep.KeptExamples) < maxExamples {
				r.rep.KeptExamples = append(r.rep.KeptExamples, p.rec.Name)
			}
		default:
			out = append(out, p.rec)
		}
	}
	return out, nil
}

// identical compares a target blob with a record. A differing size or Content-MD5 proves a
// difference; sameness is proven only by reading, since any writer can set a Content-MD5 (a
// restore after tampering must not skip the tampered blobs).
func (r *execution) identical(ctx context.Context, rec Record, have Entry) (bool, error) {
	if have.Size != rec.Size || (len(have.MD5) == md5.Size && !bytes.Equal(have.MD5, rec.MD5[:])) {
		return false, nil
	}
	rc, _, err := r.dst.Open(ctx, rec.Name)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer rc.Close()
	h := md5.New()
	if _, err := io.Copy(h, rc); err != nil {
		return false, fmt.Errorf("compare %s in %s: %w", rec.Name, r.dst, err)
	}
	return bytes.Equal(h.Sum(nil), rec.MD5[:]), nil
}

// write restores one window: each pack it touches read once, packs in parallel.
func (r *execution) write(ctx context.Context, batch []Record) error {
	byPack := map[string][]Record{}
	for _, rec := range batch {
		byPack[rec.Pack] = append(byPack[rec.Pack], rec)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.o.Workers)
	for key, recs := range byPack {
		g.Go(func() error {
			if key == "" {
				for _, rec := range recs {
					if err := r.put(gctx, rec, func(int) (io.Reader, error) { return bytes.NewReader(nil), nil }); err != nil {
						return err
					}
				}
				return nil
			}
			return r.fromPack(gctx, key, recs)
		})
	}
	return g.Wait()
}

func (r *execution) fromPack(ctx context.Context, key string, recs []Record) error {
	ref, ok := r.packs[key]
	if !ok {
		return fmt.Errorf("snapshot %s: blob %s is in pack %s, which the manifest does not list: the listing is damaged", r.rep.Snapshot, recs[0].Name, key)
	}
	slices.SortFunc(recs, func(a, b Record) int { return int(min(max(a.Offset-b.Offset, -1), 1)) })
	for i, rec := range recs {
		if rec.Offset+rec.Size > ref.RawSize || (i > 0 && rec.Offset < recs[i-1].Offset+recs[i-1].Size) {
			return fmt.Errorf("snapshot %s: blob %s at [%d, %d) of pack %s (%d bytes) overlaps another or lies outside: the listing is damaged",
				r.rep.Snapshot, rec.Name, rec.Offset, rec.Offset+rec.Size, key, ref.RawSize)
		}
	}
	rc, err := r.repo.OpenObject(ctx, ref)
	if err != nil {
		return fmt.Errorf("read pack %s: %w", key, err)
	}
	defer func() { rc.Close() }() // the last of the pack's readers: a write repeated reads it anew
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(32)
	var pos int64
	for _, rec := range recs {
		if _, err := io.CopyN(io.Discard, rc, rec.Offset-pos); err != nil {
			return fmt.Errorf("read pack %s to offset %d: %w", key, rec.Offset, err)
		}
		pos = rec.Offset + rec.Size
		if rec.Size > smallBlob {
			err := r.put(gctx, rec, func(attempt int) (io.Reader, error) {
				if attempt > 1 {
					// The failed write read some of the blob: read the pack again up to it.
					again, err := r.repo.OpenObject(gctx, ref)
					if err != nil {
						return nil, fmt.Errorf("read pack %s again: %w", key, err)
					}
					rc.Close()
					rc = again
					if _, err := io.CopyN(io.Discard, rc, rec.Offset); err != nil {
						return nil, fmt.Errorf("read pack %s again to offset %d: %w", key, rec.Offset, err)
					}
				}
				return io.LimitReader(rc, rec.Size), nil
			})
			if err != nil {
				return errors.Join(err, g.Wait())
			}
			continue
		}
		buf := make([]byte, rec.Size)
		if _, err := io.ReadFull(rc, buf); err != nil {
			return errors.Join(fmt.Errorf("read blob %s from pack %s: %w", rec.Name, key, err), g.Wait())
		}
		g.Go(func() error {
			return r.put(gctx, rec, func(int) (io.Reader, error) { return bytes.NewReader(buf), nil })
		})
	}
	return g.Wait()
}

// putAttempts bounds how often one blob is written while the target's writes fail transiently.
const putAttempts = 3

// putRetryWait is the wait before a blob's next write: 1 s, then 4 s.
var putRetryWait = func(attempt int) time.Duration { return time.Duration(attempt*attempt) * time.Second }

// put writes a blob from body(1), and where the write failed transiently (see transient) writes
// it again, up to putAttempts times, from body(n): a fresh reader of the same bytes, out of the
// snapshot's pack. That is safe: a blob is committed only once its bytes hash to its MD5, so a
// repeated write, after one that failed or whose success went unanswered, leaves the same blob.
// A failure to read the body (the repository's, which retries on its own) is not written again.
func (r *execution) put(ctx context.Context, rec Record, body func(attempt int) (io.Reader, error)) error {
	for attempt := 1; ; attempt++ {
		src, err := body(attempt)
		if err != nil {
			return err
		}
		read := &readFailure{r: src}
		err = r.dst.Put(ctx, rec.Name, rec.Size, rec.MD5[:], read)
		if err == nil {
			break
		}
		if read.failed() || !transient(err) || ctx.Err() != nil {
			return err
		}
		if attempt >= putAttempts {
			return fmt.Errorf("after %d attempts: %w", attempt, err)
		}
		r.o.Log.Warn("writing a blob failed; writing it again from its pack", "blob", rec.Name, "target", r.rep.Target,
			"attempt", attempt+1, "of", putAttempts, "err", err)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(putRetryWait(attempt)):
		}
	}
	n := r.written.Add(1)
	b := r.bytes.Add(rec.Size)
	r.mu.Lock()
	defer r.mu.Unlock()
	if time.Since(r.last) > 5*time.Second {
		r.last = time.Now()
		r.o.Log.Info("restoring blobs", "target", r.rep.Target, "written", n, "bytes", b, "listed", r.total)
	}
	return nil
}

// cursor walks a container's listing in step with a snapshot's, by name.
type cursor struct {
	next func() (Entry, error, bool)
	stop func()
	cur  *Entry
	done bool
}

func newCursor(ctx context.Context, c Container) *cursor {
	stopped := errors.New("stopped")
	seq := func(yield func(Entry, error) bool) {
		err := c.List(ctx, func(e Entry) error {
			if !yield(e, nil) {
				return stopped
			}
			return nil
		})
		if err != nil && !errors.Is(err, stopped) {
			yield(Entry{}, err)
		}
	}
	next, stop := iter.Pull2(iter.Seq2[Entry, error](seq))
	return &cursor{next: next, stop: stop}
}

// find returns the target's entry named name, or nil. A target listing out of order is an error:
// a missed match could overwrite a newer blob.
func (c *cursor) find(name string) (*Entry, error) {
	for !c.done && (c.cur == nil || c.cur.Name < name) {
		e, err, ok := c.next()
		switch {
		case !ok:
			c.done, c.cur = true, nil
		case err != nil:
			return nil, err
		case c.cur != nil && e.Name <= c.cur.Name:
			return nil, fmt.Errorf("the target lists %q after %q, out of name order; restore into an empty container", e.Name, c.cur.Name)
		default:
			c.cur = &e
		}
	}
	if c.cur != nil && c.cur.Name == name {
		return c.cur, nil
	}
	return nil, nil
}

// readFailure is a blob's bytes on their way to the target, remembering a failure of their own.
type readFailure struct {
	r   io.Reader
	err atomic.Bool
}

func (f *readFailure) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err != nil && err != io.EOF {
		f.err.Store(true)
	}
	return n, err
}

func (f *readFailure) failed() bool { return f.err.Load() }

// transient says whether a failed write to the target may succeed when the blob is written
// again: the service failed (a 5xx, 408 or 429 that outlasted the Azure client's own retries of
// each request) or the connection broke mid-upload. A blob whose bytes did not match its MD5, a
// name the target cannot hold, or a directory's failure (a full disk, a permission) would fail
// the same way again.
func transient(err error) bool {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode >= 500 || re.StatusCode == http.StatusRequestTimeout || re.StatusCode == http.StatusTooManyRequests
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
