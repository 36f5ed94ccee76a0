package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// Backend is where objects physically live: a directory or an Azure container. It knows nothing
// of snapshots, compression or encryption; the Repository above it does.
type Backend interface {
	// Put stores a stream of unknown size under name. Readers see the whole object or nothing.
	Put(ctx context.Context, name string, r io.Reader) (int64, error)
	// Create stores a stream under name only if no object has that name: ErrExists otherwise,
	// and the existing object is untouched. Of writers racing to create one name, exactly one
	// succeeds; readers see the whole object or nothing. It fences writers that must not
	// replace each other's records (the point-in-time chain's segments).
	Create(ctx context.Context, name string, r io.Reader) (int64, error)
	// Get reads [off, off+length) of an object; length < 0 reads to the end. ErrNotFound if absent.
	Get(ctx context.Context, name string, off, length int64) (io.ReadCloser, error)
	Stat(ctx context.Context, name string) (ObjectInfo, error)
	List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error
	// Delete removes an object; a missing object is not an error.
	Delete(ctx context.Context, name string) error
	// Lock takes an exclusive lease on name, renewed while held; ErrLocked names the holder.
	Lock(ctx context.Context, name string, ttl time.Duration) (Lock, error)
	// String describes the backend for messages; it never includes secrets.
	String() string
}

// Lock is a held lease.
type Lock interface {
	Release(ctx context.Context) error
	// Lost is closed once the lock may be someone else's (taken over, or expired without a
	// successful renewal): whoever holds the lock must stop writing.
	Lost() <-chan struct{}
}

// ObjectInfo describes a stored object.
type ObjectInfo struct {
	Name    string    `json:"name"`
	Size    int64     `json:"size"`
	ModTime time.Time `json:"mod_time"`
}

var (
	// ErrNotFound is returned for an object that does not exist.
	ErrNotFound = errors.New("object not found")
	// ErrExists is returned by Create for a name that is already taken.
	ErrExists = errors.New("object already exists")
	// ErrLocked is returned when another process holds the lock.
	ErrLocked = errors.New("repository is locked")
	// ErrLockLost is returned when a held lock expired or was taken over: its holder must stop.
	ErrLockLost = errors.New("lock lost: it expired or another process took it over")
)

// Holder identifies a lock's owner, stored with the lock so a waiting process can name it.
type Holder struct {
	Host  string    `json:"host"`
	PID   int       `json:"pid"`
	Since time.Time `json:"since"`
	What  string    `json:"what,omitempty"`
	// TTLMillis is the lease the holder renews within; a contender judges staleness by it.
	TTLMillis int64 `json:"ttl_ms,omitempty"`
}

// errLeaseTaken is what a renew function returns when the lease is provably someone else's (a
// newer generation, another lease id): retrying cannot help.
var errLeaseTaken = errors.New("lease taken over by another holder")

// leaseMargin is how long before a lease's end its holder stops trusting it: a contender judges
// the lease free only after the full ttl, so the holder stops writing at least this much earlier.
func leaseMargin(ttl time.Duration) time.Duration { return ttl / 4 }

// renewal is the lease both backends share. The lease is valid until validUntil, which each
// successful renewal moves to its start + ttl - margin; Lost closes when renewal proved the lease
// taken, or when validUntil passed without a successful renewal. A transient renewal failure is
// retried with backoff until then: one network hiccup must not abort a multi-hour backup.
type renewal struct {
	ttl     time.Duration
	renew   func(context.Context) error
	release func(ctx context.Context) error

	renewMu    sync.Mutex // one renewal at a time: the loop's, or a Confirm's
	mu         sync.Mutex
	validUntil time.Time // monotonic: a process stopped (SIGSTOP) past it wakes up expired
	// renewErr is the last renewal's failure, nil after a success: a lease that runs out while
	// renewals fail was lost to that failure (storage down, throttled), which the holder's
	// error must name rather than a takeover.
	renewErr error
	lost     chan struct{}
	lostOnce sync.Once
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
}

// startLease starts renewing a lease acquired at acquired (taken before the acquiring call, so the
// validity is never overestimated).
func startLease(ttl time.Duration, acquired time.Time, renew, release func(context.Context) error) *renewal {
	l := &renewal{ttl: ttl, renew: renew, release: release, validUntil: acquired.Add(ttl - leaseMargin(ttl)),
		lost: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{})}
	go l.loop()
	return l
}

func (l *renewal) loop() {
	defer close(l.done)
	every := l.ttl / 3
	wait := every
	for {
		select {
		case <-l.stop:
			return
		case <-time.After(min(wait, time.Until(l.until()))): // wake at the latest when it expires
		}
		switch err := l.renewOnce(context.Background()); {
		case err == nil:
			wait = every
		case errors.Is(err, ErrLockLost):
			return
		case wait == every:
			// Transient: retry sooner, backing off, until the lease has really run out.
			wait = l.ttl / 20
		default:
			wait = min(wait*2, every)
		}
	}
}

// renewOnce renews the lease now. It returns ErrLockLost once the lease is gone for good, any
// other error for a failure worth retrying while the lease is still valid.
func (l *renewal) renewOnce(ctx context.Context) error {
	l.renewMu.Lock()
	defer l.renewMu.Unlock()
	start := time.Now()
	if l.expired(start) {
		return l.lostErr()
	}
	ctx, cancel := context.WithDeadline(ctx, l.until())
	err := l.renew(ctx)
	cancel()
	if err == nil && time.Since(start) > leaseMargin(l.ttl) {
		// A renewal that landed this late may have landed after a contender judged the lease
		// expired (it waits ttl from the previous renewal): it must not extend the validity.
		err = errors.New("renewal took longer than the safety margin")
	}
	l.mu.Lock()
	l.renewErr = err
	if err == nil {
		l.validUntil = start.Add(l.ttl - leaseMargin(l.ttl))
	}
	l.mu.Unlock()
	if errors.Is(err, errLeaseTaken) {
		l.markLost()
		return fmt.Errorf("%w: %w", ErrLockLost, err)
	}
	return err
}

// lostErr is ErrLockLost with the failure that kept the lease from being renewed, if any.
func (l *renewal) lostErr() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.renewErr != nil {
		return fmt.Errorf("%w: the lease ran out while renewing it failed: %w", ErrLockLost, l.renewErr)
	}
	return ErrLockLost
}

// confirm renews now and fails only if the lease is lost: a transient failure while the lease
// is still valid does not make the holder give up.
func (l *renewal) confirm(ctx context.Context) error {
	if err := l.renewOnce(ctx); errors.Is(err, ErrLockLost) {
		return err
	}
	if !Held(l) {
		return l.lostErr()
	}
	return nil
}

func (l *renewal) until() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.validUntil
}

// expired marks the lease lost once its validity has passed, and says so.
func (l *renewal) expired(now time.Time) bool {
	if now.Before(l.until()) {
		return false
	}
	l.markLost()
	return true
}

func (l *renewal) markLost() { l.lostOnce.Do(func() { close(l.lost) }) }

// Lost checks the lease's validity as it is called, so a holder that was stopped past its lease
// sees the loss at its next check, before the renewal goroutine has even run.
func (l *renewal) Lost() <-chan struct{} {
	l.expired(time.Now())
	return l.lost
}

// releaseFor bounds how long a release is retried. A release lost to a storage hiccup makes the
// next holder wait out the whole lease (a minute), but the caller, often a command about to
// exit, should not wait that long either.
const releaseFor = 10 * time.Second

// Release stops renewing and gives the lease up; it touches only this holder's own lease, so it
// is safe (and a no-op for others) after the lease was lost, and retrying it is too.
func (l *renewal) Release(ctx context.Context) error {
	first := false
	l.stopOnce.Do(func() { close(l.stop); first = true })
	if !first {
		return nil
	}
	<-l.done
	deadline := time.Now().Add(releaseFor)
	for wait := 200 * time.Millisecond; ; wait = min(2*wait, 2*time.Second) {
		err := l.release(ctx)
		if err == nil || l.expired(time.Now()) || time.Now().Add(wait).After(deadline) {
			return err
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return err
		}
	}
}

// Confirm renews l now and returns ErrLockLost if it is no longer held: a holder calls it right
// before an irreversible write such as committing a manifest, so a takeover that the periodic
// renewal has not seen yet is still caught. A lock that cannot renew on demand (a ZooKeeper
// claim) is judged by its Lost channel.
func Confirm(ctx context.Context, l Lock) error {
	if c, ok := l.(interface{ confirm(context.Context) error }); ok {
		return c.confirm(ctx)
	}
	if !Held(l) {
		return ErrLockLost
	}
	return nil
}

// Held reports whether l is still held, checked now, without any I/O.
func Held(l Lock) bool {
	select {
	case <-l.Lost():
		return false
	default:
		return true
	}
}

// WhileHeld returns a context that is cancelled, with cause, as soon as l is lost: work done
// under a lock stops at once when another process may already hold it.
func WhileHeld(ctx context.Context, l Lock, cause error) (context.Context, context.CancelCauseFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	go func() {
		select {
		case <-l.Lost():
			if r, ok := l.(*renewal); ok && r.lostErr() != ErrLockLost {
				cause = fmt.Errorf("%w (%w)", cause, r.lostErr())
			}
			cancel(cause)
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}
