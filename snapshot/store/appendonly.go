package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrAppendOnly is returned for an operation an append-only repository never performs: a
// delete, a rewrite of an existing object, a prune.
var ErrAppendOnly = errors.New("the repository is append-only here ([storage] append_only = true)")

// appendOnlyFix names what to do instead, for the commands that delete.
const appendOnlyFix = "run prune and delete as a separate identity: a second configuration without append_only, whose credential may delete (e.g. the chart's prune CronJob)"

// AppendOnly wraps b so that nothing written through it is ever replaced or removed: Put creates
// (ErrExists for a name already taken), Delete refuses, and Lock takes a create-only lock
// (CreateOnlyLock) instead of a lease. It is what the daemon uses with a credential that cannot
// overwrite or delete (an Azure SAS "rcl"): every write it attempts is one such a credential
// allows, so the mode is exercised even on a backend that would allow more (a directory, where
// it is advisory).
func AppendOnly(b Backend) Backend {
	if _, ok := b.(*appendOnly); ok {
		return b
	}
	return &appendOnly{b}
}

type appendOnly struct{ Backend }

// IsAppendOnly reports whether b was wrapped by AppendOnly.
func IsAppendOnly(b Backend) bool {
	_, ok := b.(*appendOnly)
	return ok
}

func (a *appendOnly) Put(ctx context.Context, name string, r io.Reader) (int64, error) {
	n, err := a.Backend.Create(ctx, name, r)
	if errors.Is(err, ErrExists) {
		return n, fmt.Errorf("put %s: %w: it would overwrite an existing object: %w", name, ErrAppendOnly, err)
	}
	return n, err
}

func (a *appendOnly) Delete(_ context.Context, name string) error {
	return fmt.Errorf("delete %s from %s: %w; %s", name, a.Backend, ErrAppendOnly, appendOnlyFix)
}

func (a *appendOnly) Lock(ctx context.Context, name string, ttl time.Duration) (Lock, error) {
	return CreateOnlyLock(ctx, a.Backend, name, ttl)
}

// CopyFromURL keeps the server-side copy of the wrapped backend: it fills a new object (a new
// id), which a create-only credential may do.
func (a *appendOnly) CopyFromURL(ctx context.Context, name string, src CopySource) error {
	sc, ok := a.Backend.(ServerCopier)
	if !ok {
		return fmt.Errorf("copy into %s: %w: %s cannot fill an object from a URL", name, ErrNoServerCopy, a.Backend)
	}
	return sc.CopyFromURL(ctx, name, src)
}

// Unwrap returns the wrapped backend (for probes that must use the credential as it is).
func (a *appendOnly) Unwrap() Backend { return a.Backend }

// createOnlyPrefix is where create-only locks live, apart from the lease locks under locks/ so
// that neither kind mistakes the other's objects for its own.
const createOnlyPrefix = "locks/create-only/"

// CreateOnlyLock takes the lock name with objects that are only ever created, never rewritten or
// deleted, so it works with a credential that may do nothing else (no lease, no delete):
//
//	locks/create-only/<name>/<gen>.claim      the holder of generation gen (JSON Holder)
//	locks/create-only/<name>/<gen>.r<seq>     a renewal by that holder
//	locks/create-only/<name>/<gen>.released   its release
//
// The newest generation is the lock. It is held while it is not released and its newest object
// is younger than the holder's ttl (or its holder is a live process on this host). A contender
// takes the lock by creating the next generation's claim, which exactly one contender can do,
// then checks that the generation it replaced is still free (its holder did not renew between
// the look and the create); if not, it releases its own generation and backs off, and the late
// holder loses the lock at its next renewal too (safe: no one holds it for a moment). A holder
// renews by creating a renewal and then checking that no next generation exists: created after
// its renewal, a successor judged the lock stale from that renewal's time, i.e. at least a ttl
// after the renewal started, when the holder has stopped trusting it (leaseMargin).
//
// Staleness compares an object's modification time (the storage service's clock on Azure) with
// this host's clock: skew between them shortens or lengthens the lease by as much. Objects pile
// up (one renewal per ttl/3 of holding); prune, which may delete, removes old generations.
func CreateOnlyLock(ctx context.Context, b Backend, name string, ttl time.Duration) (Lock, error) {
	dir := createOnlyPrefix + name + "/"
	if err := CheckName(dir + "x"); err != nil {
		return nil, fmt.Errorf("lock %s in %s: %w", name, b, err)
	}
	var holder Holder
	for attempt := 0; attempt < 3; attempt++ {
		top, err := lockGenerations(ctx, b, dir)
		if err != nil {
			return nil, fmt.Errorf("lock %s in %s: %w", name, b, err)
		}
		next := uint64(1)
		if top.gen > 0 {
			holder = top.holder(ctx, b, dir)
			if !top.free(holder, ttl) {
				break
			}
			next = top.gen + 1
		}
		acquired := time.Now()
		h := currentHolder(name)
		h.TTLMillis = ttl.Milliseconds()
		body, _ := json.Marshal(h)
		if _, err := b.Create(ctx, claimObject(dir, next), bytes.NewReader(body)); errors.Is(err, ErrExists) {
			continue // another contender took this generation
		} else if err != nil {
			return nil, fmt.Errorf("lock %s in %s: %w", name, b, err)
		}
		if ok, err := confirmClaim(ctx, b, dir, next, top, ttl); err != nil || !ok {
			// Ours is not the lock: give our generation up so no one waits for it.
			_, _ = b.Create(ctx, releasedObject(dir, next), bytes.NewReader(nil))
			if err != nil {
				return nil, fmt.Errorf("lock %s in %s: %w", name, b, err)
			}
			continue
		}
		return startLease(ttl, acquired, createOnlyRenew(b, dir, name, next), createOnlyRelease(b, dir, name, next)), nil
	}
	return nil, fmt.Errorf("lock %s in %s: %w by %s", name, b, ErrLocked, describeHolder(holder))
}

// confirmClaim checks, after creating generation gen, that it is the lock: no newer generation
// appeared, and the generation it replaced is still free.
func confirmClaim(ctx context.Context, b Backend, dir string, gen uint64, prev lockGen, ttl time.Duration) (bool, error) {
	now, err := lockGenerations(ctx, b, dir)
	if err != nil || now.gen != gen {
		return false, err
	}
	if prev.gen == 0 {
		return true, nil
	}
	again, err := lockGeneration(ctx, b, dir, prev.gen)
	if err != nil {
		return false, err
	}
	return again.free(again.holder(ctx, b, dir), ttl), nil
}

func createOnlyRenew(b Backend, dir, name string, gen uint64) func(context.Context) error {
	var seq uint64
	return func(ctx context.Context) error {
		for {
			seq++
			_, err := b.Create(ctx, fmt.Sprintf("%s%020d.r%010d", dir, gen, seq), bytes.NewReader(nil))
			if errors.Is(err, ErrExists) {
				continue // an earlier attempt landed after all
			}
			if err != nil {
				return fmt.Errorf("renew lock %s in %s: %w", name, b, err)
			}
			break
		}
		_, err := b.Stat(ctx, claimObject(dir, gen+1))
		switch {
		case err == nil:
			return fmt.Errorf("%w: generation %d of lock %s in %s exists", errLeaseTaken, gen+1, name, b)
		case errors.Is(err, ErrNotFound):
			return nil
		default:
			return fmt.Errorf("renew lock %s in %s: %w", name, b, err)
		}
	}
}

func createOnlyRelease(b Backend, dir, name string, gen uint64) func(context.Context) error {
	return func(ctx context.Context) error {
		_, err := b.Create(ctx, releasedObject(dir, gen), bytes.NewReader(nil))
		if err != nil && !errors.Is(err, ErrExists) {
			return fmt.Errorf("release lock %s in %s: %w", name, b, err)
		}
		return nil
	}
}

func claimObject(dir string, gen uint64) string    { return fmt.Sprintf("%s%020d.claim", dir, gen) }
func releasedObject(dir string, gen uint64) string { return fmt.Sprintf("%s%020d.released", dir, gen) }

// lockGen is what one generation's objects say.
type lockGen struct {
	gen      uint64
	released bool
	latest   time.Time // the newest of its objects' modification times
}

// free reports whether the generation no longer holds the lock: released, or stale.
func (g lockGen) free(h Holder, ttl time.Duration) bool {
	if g.released {
		return true
	}
	if h.TTLMillis > 0 {
		ttl = time.Duration(h.TTLMillis) * time.Millisecond
	}
	if time.Since(g.latest) > ttl {
		return true
	}
	// A holder that is a dead process on this host is gone (as stale judges for the filesystem).
	host, _ := os.Hostname()
	return h.Host == host && h.PID > 0 && syscall.Kill(h.PID, 0) == syscall.ESRCH
}

func (g lockGen) holder(ctx context.Context, b Backend, dir string) Holder {
	var h Holder
	rc, err := b.Get(ctx, claimObject(dir, g.gen), 0, 4096)
	if err != nil {
		return h
	}
	defer rc.Close()
	_ = json.NewDecoder(rc).Decode(&h)
	return h
}

// lockGenerations returns the newest generation under dir (gen 0 if none).
func lockGenerations(ctx context.Context, b Backend, dir string) (lockGen, error) {
	return scanLock(ctx, b, dir, 0)
}

// lockGeneration returns generation gen.
func lockGeneration(ctx context.Context, b Backend, dir string, gen uint64) (lockGen, error) {
	return scanLock(ctx, b, dir, gen)
}

func scanLock(ctx context.Context, b Backend, dir string, only uint64) (lockGen, error) {
	gens := map[uint64]*lockGen{}
	var top uint64
	err := b.List(ctx, dir, func(o ObjectInfo) error {
		base := strings.TrimPrefix(o.Name, dir)
		num, kind, ok := strings.Cut(base, ".")
		n, err := strconv.ParseUint(num, 10, 64)
		if !ok || err != nil || len(num) != 20 || (only != 0 && n != only) {
			return nil // not ours: ignored rather than trusted
		}
		g := gens[n]
		if g == nil {
			g = &lockGen{gen: n}
			gens[n] = g
		}
		switch {
		case kind == "claim":
		case kind == "released":
			g.released = true
		case strings.HasPrefix(kind, "r"):
		default:
			return nil
		}
		if o.ModTime.After(g.latest) {
			g.latest = o.ModTime
		}
		top = max(top, n)
		return nil
	})
	if err != nil || top == 0 {
		return lockGen{}, err
	}
	return *gens[top], nil
}

// HasCreateOnlyLock reports whether anyone ever took the create-only lock name in b: a process
// with a lease lock (prune, run by the identity that may delete) takes it too, then, so that it
// excludes the append-only daemons.
func HasCreateOnlyLock(ctx context.Context, b Backend, name string) (bool, error) {
	found := false
	err := b.List(ctx, createOnlyPrefix+name+"/", func(ObjectInfo) error {
		found = true
		return errStopList
	})
	if errors.Is(err, errStopList) {
		err = nil
	}
	return found, err
}

var errStopList = errors.New("stop listing")

// repositoryLockTTL is the repository lock's lease.
const repositoryLockTTL = 60 * time.Second

// lockRepository takes the repository lock. An append-only repository takes the create-only
// lock; a process that may delete (prune, delete) takes its lease lock and, once append-only
// daemons have used the repository, their create-only lock too, so the two kinds exclude
// each other.
func (r *Repository) lockRepository(ctx context.Context) (Lock, error) {
	l, err := r.b.Lock(ctx, "repository", repositoryLockTTL)
	if err != nil || IsAppendOnly(r.b) {
		return l, err
	}
	shared, err := HasCreateOnlyLock(ctx, r.b, "repository")
	if err != nil || !shared {
		if err != nil {
			_ = l.Release(context.Background())
		}
		return l, err
	}
	co, err := CreateOnlyLock(ctx, r.b, "repository", repositoryLockTTL)
	if err != nil {
		_ = l.Release(context.Background())
		return nil, err
	}
	return newBothLocks(l, co), nil
}

// AppendOnly reports whether the repository is opened append-only.
func (r *Repository) AppendOnly() bool { return IsAppendOnly(r.b) }

// RefuseAppendOnly is the error of an operation that deletes (what), in append-only mode, naming
// the fix; nil otherwise. Callers check it before taking a lock for nothing.
func (r *Repository) RefuseAppendOnly(what string) error { return r.refuseAppendOnly(what) }

// refuseAppendOnly is the error of an operation that deletes, in append-only mode.
func (r *Repository) refuseAppendOnly(what string) error {
	if !r.AppendOnly() {
		return nil
	}
	return fmt.Errorf("%s: %w, and its credential is meant to be unable to delete; %s", what, ErrAppendOnly, appendOnlyFix)
}

// bothLocks holds two locks as one: lost as soon as either is.
type bothLocks struct {
	a, b     Lock
	lost     chan struct{}
	released chan struct{}
	once     sync.Once
}

func newBothLocks(a, b Lock) *bothLocks {
	l := &bothLocks{a: a, b: b, lost: make(chan struct{}), released: make(chan struct{})}
	go func() {
		select {
		case <-a.Lost():
		case <-b.Lost():
		case <-l.released:
			return
		}
		close(l.lost)
	}()
	return l
}

func (l *bothLocks) Release(ctx context.Context) error {
	l.once.Do(func() { close(l.released) })
	return errors.Join(l.b.Release(ctx), l.a.Release(ctx))
}

func (l *bothLocks) Lost() <-chan struct{} {
	// Lost of each checks its lease's validity as it is called (a holder stopped past it).
	if !Held(l.a) || !Held(l.b) {
		select {
		case <-l.lost:
		case <-time.After(time.Second):
		}
	}
	return l.lost
}

func (l *bothLocks) confirm(ctx context.Context) error {
	return errors.Join(Confirm(ctx, l.a), Confirm(ctx, l.b))
}

// leftoverAge is how old a superseded object of the append-only layout must be before prune
// removes it: far past any lease, so no contender is still looking at it.
const leftoverAge = time.Hour

// keepPositions is how many verify positions prune keeps (the newest; only the last is read).
const keepPositions = 10

// sweepLeftovers removes what append-only writers leave behind and never remove themselves:
// create-only lock generations older than the newest two of their lock, verify positions but
// the newest few, and doctor canaries. It is prune's, whose identity may delete.
func (r *Repository) sweepLeftovers(ctx context.Context, lock Lock, dryRun bool) (int, error) {
	old := time.Now().Add(-leftoverAge)
	var doomed []string
	gens := map[string][]uint64{} // lock dir -> generations seen
	var lockObjs []ObjectInfo
	if err := r.b.List(ctx, createOnlyPrefix, func(o ObjectInfo) error {
		dir, base := o.Name[:strings.LastIndexByte(o.Name, '/')+1], o.Name[strings.LastIndexByte(o.Name, '/')+1:]
		num, _, _ := strings.Cut(base, ".")
		if n, err := strconv.ParseUint(num, 10, 64); err == nil && len(num) == 20 {
			gens[dir] = append(gens[dir], n)
			lockObjs = append(lockObjs, o)
		}
		return nil
	}); err != nil {
		return 0, fmt.Errorf("prune: list lock generations: %w", err)
	}
	for _, o := range lockObjs {
		dir, base := o.Name[:strings.LastIndexByte(o.Name, '/')+1], o.Name[strings.LastIndexByte(o.Name, '/')+1:]
		n, _ := strconv.ParseUint(base[:20], 10, 64)
		if n+1 < slices.Max(gens[dir]) && o.ModTime.Before(old) {
			doomed = append(doomed, o.Name)
		}
	}
	var positions []string
	if err := r.b.List(ctx, positionPrefix, func(o ObjectInfo) error {
		positions = append(positions, o.Name)
		return nil
	}); err != nil {
		return 0, fmt.Errorf("prune: list verify positions: %w", err)
	}
	slices.Sort(positions)
	if len(positions) > keepPositions {
		doomed = append(doomed, positions[:len(positions)-keepPositions]...)
	}
	if err := r.b.List(ctx, doctorPrefix, func(o ObjectInfo) error {
		if o.ModTime.Before(old) {
			doomed = append(doomed, o.Name)
		}
		return nil
	}); err != nil {
		return 0, fmt.Errorf("prune: list doctor canaries: %w", err)
	}
	if dryRun {
		return len(doomed), nil
	}
	for i, name := range doomed {
		if !Held(lock) {
			return i, errors.New("repository lock lost; stopping before deleting more")
		}
		if err := r.b.Delete(ctx, name); err != nil {
			return i, fmt.Errorf("prune: %w", err)
		}
	}
	return len(doomed), nil
}
