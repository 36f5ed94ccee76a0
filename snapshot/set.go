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
}

// Put stores one object. meta says what it holds; a non-empty fingerprint lets an unchanged
// unit reuse an earlier snapshot's object without reading src. A src that knows its row count
// only once drained (a COPY) reports it with a Rows method, and the manifest records that count.
func (w *Writer) Put(ctx context.Context, meta store.ManifestObject, fingerprint string, src io.Reader) (store.ManifestObject, error) {
	ref, reused, err := w.repo.PutObject(ctx, fingerprint, src)
	if err != nil {
		return store.ManifestObject{}, fmt.Errorf("store %s: %w", describe(meta), err)
	}
	if rc, ok := src.(interface{ Rows() int64 }); ok && !reused {
		meta.Rows = rc.Rows()
	}
	meta.ObjectRef, meta.Reused, meta.Source = ref, reused, w.source
	w.mu.Lock()
	w.objects = append(w.objects, meta)
	w.mu.Unlock()
	w.log.Debug("stored object", "source", w.source, "what", describe(meta), "bytes", ref.Size, "reused", reused)
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
}

// ErrPartial is returned with the manifest of a set whose sources did not all succeed.
var ErrPartial = errors.New("snapshot is partial")

// Run backs up every source in order under the repository lock and commits one manifest: complete
// if all sources succeeded, partial (with their errors) otherwise. A cancelled context still
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

	m := store.NewManifest(opts.Tags)
	var failures []string
	for _, src := range sources {
		c, objects, section := runSource(ctx, repo, src, opts.Log)
		m.Components = append(m.Components, c)
		m.Objects = append(m.Objects, objects...)
		if section != nil {
			m.Sections[src.Name()] = section
		}
		if c.Status != store.StatusComplete {
			failures = append(failures, fmt.Sprintf("%s: %s", src.Name(), c.Error))
		}
	}
	m.End = time.Now().UTC()
	m.Status = store.StatusComplete
	if len(failures) > 0 || len(sources) == 0 {
		m.Status = store.StatusPartial
		m.Error = strings.Join(failures, "; ")
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
		return m, err
	}
	if m.Status != store.StatusComplete {
		return m, fmt.Errorf("%w: %s", ErrPartial, m.Error)
	}
	return m, nil
}

func runSource(ctx context.Context, repo *store.Repository, src Source, log *slog.Logger) (store.Component, []store.ManifestObject, json.RawMessage) {
	c := store.Component{Source: src.Name(), Start: time.Now().UTC()}
	w := &Writer{repo: repo, source: src.Name(), log: log}
	log.Info("backing up", "source", src.Name())
	section, err := safeBackup(ctx, src, w)
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
	return c, w.objects, raw
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
