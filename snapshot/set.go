// Package snapshot binds the sources of one backup into a snapshot set: one manifest that
// records the PostgreSQL snapshot, the ClickHouse partitions, the ZooKeeper record and the blob
// container's listing, each with its start and end, so a restore brings them back as close to
// one moment as the servers allow.
package snapshot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/tracevault/tracevault/snapshot/progress"
	"github.com/tracevault/tracevault/snapshot/store"
)

// Source backs up one kind of data through a Writer and returns its manifest section.
type Source interface {
	Name() string
	Backup(ctx context.Context, w *Writer) (section any, err error)
}

// Writer is a source's way into the repository: every object it stores is recorded in the
// manifest, tagged with the source.
type Writer struct {
	repo   *store.Repository
	source string
	log    *slog.Logger

	mu      sync.Mutex
	objects []store.ManifestObject
	cut     *store.SourceCut

	// cuts is shared by the sources that run together (Cutter); arrived is this one's turn.
	cuts    *cutBarrier
	arrived sync.Once
}

// A Cutter takes a cut of live data: it connects and reads what it needs, calls
// Writer.AwaitCut, and takes its cut (a snapshot, its first export) as soon as that returns.
// Run starts every Cutter at once and releases them together, so their cuts fall as close
// together as the servers allow; the other sources run after them, in order.
type Cutter interface {
	Source
	TakesCut()
}

// AwaitCut blocks until every source running beside this one is ready to take its cut, or has
// ended; a source that is not a Cutter returns at once.
func (w *Writer) AwaitCut(ctx context.Context) error {
	if w.cuts == nil {
		return nil
	}
	w.arrive()
	select {
	case <-w.cuts.ready:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

func (w *Writer) arrive() {
	if w.cuts != nil {
		w.arrived.Do(w.cuts.arrive)
	}
}

// RecordCut records the source's cut: every write it acknowledged before t is in what it
// stored. position is the source's own mark of it (an LSN), or empty.
func (w *Writer) RecordCut(t time.Time, position string) {
	w.mu.Lock()
	w.cut = &store.SourceCut{Source: w.source, Time: t.UTC(), Position: position}
	w.mu.Unlock()
}

// cutBarrier releases the sources waiting in AwaitCut once all have arrived; a source that ends
// without taking a cut (a failure) arrives as it ends, so it never holds the others.
type cutBarrier struct {
	mu      sync.Mutex
	waiting int
	ready   chan struct{}
}

func newCutBarrier(n int) *cutBarrier { return &cutBarrier{waiting: n, ready: make(chan struct{})} }

func (b *cutBarrier) arrive() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.waiting--; b.waiting == 0 {
		close(b.ready)
	}
}

// Put stores one object. meta says what it holds; a non-empty fingerprint lets an unchanged
// unit reuse an earlier snapshot's object without reading src. A src that knows its row count
// only once drained (a COPY) reports it with a Rows method, and the manifest records that count.
func (w *Writer) Put(ctx context.Context, meta store.ManifestObject, fingerprint string, src io.Reader) (store.ManifestObject, error) {
	rep := progress.From(ctx)
	meta.Source = w.source
	unit := meta.Unit()
	counted := progress.Reader(rep, src, unit, false)
	body := counted
	if c, ok := src.(store.FingerprintCheck); ok {
		body = checkedReader{counted, c}
	}
	ref, reused, err := w.repo.PutObject(ctx, fingerprint, body)
	if err != nil {
		// The source may export it again (a connection that broke off), or the set fails.
		progress.Uncount(counted)
		return store.ManifestObject{}, fmt.Errorf("store %s: %w", describe(meta), err)
	}
	if rc, ok := src.(interface{ Rows() int64 }); ok && !reused {
		meta.Rows = rc.Rows()
	}
	if reused {
		// Nothing streamed: the reused object counts as done at its size.
		rep.Begin(unit)
		rep.Add(ref.RawSize, meta.Rows)
	} else {
		rep.Add(0, meta.Rows)
	}
	rep.End(unit)
	meta.ObjectRef, meta.Reused = ref, reused
	w.mu.Lock()
	w.objects = append(w.objects, meta)
	w.mu.Unlock()
	w.log.Debug("stored object", "source", w.source, "what", describe(meta), "bytes", ref.Size, "reused", reused)
	return meta, nil
}

// checkedReader is a counted source that keeps the source's store.FingerprintCheck.
type checkedReader struct {
	io.Reader
	store.FingerprintCheck
}

// Copy records an object the repository's storage service filled from src itself
// (store.Repository.CopyObject): no byte of it passes through this process.
func (w *Writer) Copy(ctx context.Context, meta store.ManifestObject, fingerprint string, src store.CopySource) (store.ManifestObject, error) {
	meta.Source = w.source
	ref, err := w.repo.CopyObject(ctx, fingerprint, src)
	if err != nil {
		return store.ManifestObject{}, fmt.Errorf("copy %s: %w", describe(meta), err)
	}
	rep, unit := progress.From(ctx), meta.Unit()
	rep.Begin(unit)
	rep.Add(ref.RawSize, 0)
	rep.End(unit)
	meta.ObjectRef = ref
	w.mu.Lock()
	w.objects = append(w.objects, meta)
	w.mu.Unlock()
	w.log.Debug("copied object", "source", w.source, "what", describe(meta), "bytes", ref.Size)
	return meta, nil
}

// Repository gives a source read access, e.g. to compare with an earlier snapshot.
func (w *Writer) Repository() *store.Repository { return w.repo }

func describe(o store.ManifestObject) string {
	var parts []string
	for _, s := range []string{o.Kind, strings.Trim(o.Database+"."+o.Table, "."), o.Partition, o.Replica} {
		if s != "" {
			parts = append(parts, s)
		}
	}
	return strings.Join(parts, " ")
}

// Options tune a run.
type Options struct {
	Tags     []string
	LockWait time.Duration
	Log      *slog.Logger
	// Scope is what the set is asked to hold, recorded in its manifest; nil records the sources
	// run, none narrowed.
	Scope *store.Scope
}

// ErrPartial is returned with the manifest of a set whose sources did not all succeed.
var ErrPartial = errors.New("snapshot is partial")

// Run backs up every source under the repository lock (the Cutters together, then the others in
// order) and commits one manifest: complete if all sources succeeded, partial (with their
// errors) otherwise; a complete one records the set's cut. A cancelled context still
// commits the partial record of what was stored, never a complete-looking one.
func Run(ctx context.Context, repo *store.Repository, sources []Source, opts Options) (*store.Manifest, error) {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.LockWait == 0 {
		opts.LockWait = 10 * time.Minute
	}
	lock, err := repo.Lock(ctx, "backup", opts.LockWait)
	if err != nil {
		return nil, err
	}
	defer lock.Release(context.Background())
	// Losing the lease means prune may run: stop writing at once.
	ctx, cancel := store.WhileHeld(ctx, lock, store.ErrLockLost)
	defer cancel(nil)

	planSources(ctx, sources, opts.Log)
	m := store.NewManifest(opts.Tags)
	m.Scope = opts.Scope
	if m.Scope == nil {
		m.Scope = &store.Scope{}
		for _, src := range sources {
			m.Scope.Sources = append(m.Scope.Sources, src.Name())
		}
	}
	results := runSources(ctx, repo, sources, opts.Log)
	var failures []string
	var cuts []store.SourceCut
	for i, src := range sources {
		r := results[i]
		m.Components = append(m.Components, r.component)
		m.Objects = append(m.Objects, r.objects...)
		if r.section != nil {
			m.Sections[src.Name()] = r.section
		}
		if r.component.Status != store.StatusComplete {
			failures = append(failures, fmt.Sprintf("%s: %s", src.Name(), r.component.Error))
		}
		if r.cut != nil {
			cuts = append(cuts, *r.cut)
		}
	}
	m.End = time.Now().UTC()
	m.Status = store.StatusComplete
	if len(failures) > 0 || len(sources) == 0 {
		m.Status = store.StatusPartial
		m.Error = strings.Join(failures, "; ")
	} else {
		// Only a whole set stands for a moment: a failed source's cut says nothing of its data.
		m.Cut = store.NewCut(cuts)
	}
	if m.Cut != nil {
		opts.Log.Info("snapshot cut", "time", m.Cut.Time, "skew_seconds", m.Cut.SkewSeconds)
	}
	commitCtx := ctx
	if ctx.Err() != nil {
		var cancelCommit context.CancelFunc
		commitCtx, cancelCommit = context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancelCommit()
	}
	// A manifest committed without the lock could reference objects a prune (which may hold the
	// lock now) is deleting: after a loss, commit nothing; the uploaded objects are unreferenced
	// and the next prune removes them.
	if err := store.Confirm(commitCtx, lock); err != nil {
		m.Status = store.StatusPartial
		m.Error = strings.Join(append(failures, "repository lock lost before the commit"), "; ")
		return m, fmt.Errorf("%w: snapshot not committed; another process (prune, or a backup that judged this one dead) may hold the repository now; run the backup again: %w", ErrPartial, err)
	}
	if err := repo.CommitManifest(commitCtx, m); err != nil {
		if m.Status != store.StatusComplete {
			// The storage failing under a source fails the commit too: the run must still
			// name what failed first.
			return m, fmt.Errorf("%w: %s; nor was its record stored: %w", ErrPartial, m.Error, err)
		}
		return m, err
	}
	if m.Status != store.StatusComplete {
		return m, fmt.Errorf("%w: %s", ErrPartial, m.Error)
	}
	return m, nil
}

// Planner is a Source that can size its work before it runs, cheaply, so progress shows a total
// and an ETA.
type Planner interface {
	Plan(ctx context.Context, rep progress.Reporter) error
}

// planSources sizes the sources' work when someone watches the progress; a source that cannot
// be sized only leaves its share out of the total.
func planSources(ctx context.Context, sources []Source, log *slog.Logger) {
	rep := progress.From(ctx)
	if rep == progress.Nop {
		return
	}
	for _, src := range sources {
		if p, ok := src.(Planner); ok {
			if err := p.Plan(ctx, rep); err != nil {
				log.Warn("could not size the backup for its progress; the total leaves this source out", "source", src.Name(), "err", err)
			}
		}
	}
}

// sourceResult is what one source left for the manifest.
type sourceResult struct {
	component store.Component
	objects   []store.ManifestObject
	section   json.RawMessage
	cut       *store.SourceCut
}

// runSources runs the Cutters together, then the other sources in order; results are in the
// order of sources. Running the Cutters one after another would set their cuts apart by the
// whole of the first one's copy.
func runSources(ctx context.Context, repo *store.Repository, sources []Source, log *slog.Logger) []sourceResult {
	results := make([]sourceResult, len(sources))
	var together []int
	for i, src := range sources {
		if _, ok := src.(Cutter); ok {
			together = append(together, i)
		}
	}
	cuts := newCutBarrier(len(together))
	var wg sync.WaitGroup
	for _, i := range together {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = runSource(ctx, &Writer{repo: repo, source: sources[i].Name(), log: log, cuts: cuts}, sources[i])
		}()
	}
	wg.Wait()
	for i, src := range sources {
		if _, ok := src.(Cutter); !ok {
			results[i] = runSource(ctx, &Writer{repo: repo, source: src.Name(), log: log}, src)
		}
	}
	return results
}

func runSource(ctx context.Context, w *Writer, src Source) sourceResult {
	log := w.log
	c := store.Component{Source: src.Name(), Start: time.Now().UTC()}
	log.Info("backing up", "source", src.Name())
	section, err := safeBackup(ctx, src, w)
	w.arrive()
	c.End = time.Now().UTC()
	c.Status = store.StatusComplete
	if err != nil {
		c.Status, c.Error = store.StatusPartial, store.ErrorText(err.Error())
		log.Error("source failed", "source", src.Name(), "err", err)
	} else {
		log.Info("source done", "source", src.Name(), "objects", len(w.objects), "seconds", c.End.Sub(c.Start).Seconds())
	}
	var raw json.RawMessage
	if section != nil {
		if b, err := json.Marshal(section); err == nil {
			raw = b
		}
	}
	return sourceResult{component: c, objects: w.objects, section: raw, cut: w.cut}
}

// safeBackup turns a source's panic into its failure, so one broken source cannot take the
// daemon down or leave the set uncommitted.
func safeBackup(ctx context.Context, src Source, w *Writer) (section any, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic in %s backup: %v", src.Name(), p)
		}
	}()
	return src.Backup(ctx, w)
}
