package store

import (
	"context"
	"errors"
	"io"
	"time"
)

// Backend is where objects physically live: a directory or an Azure container. It knows nothing
// of snapshots, compression or encryption; the Repository above it does.
type Backend interface {
	// Put stores a stream of unknown size under name. Readers see the whole object or nothing.
	Put(ctx context.Context, name string, r io.Reader) (int64, error)
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
	// Lost is closed when renewal failed: whoever holds the lock must stop writing.
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
	// ErrLocked is returned when another process holds the lock.
	ErrLocked = errors.New("repository is locked")
)

// Holder identifies a lock's owner, stored with the lock so a waiting process can name it.
type Holder struct {
	Host  string    `json:"host"`
	PID   int       `json:"pid"`
	Since time.Time `json:"since"`
	What  string    `json:"what,omitempty"`
}

// renewal is the renewal loop both backends share: renew every ttl/3, close lost on failure.
type renewal struct {
	lost    chan struct{}
	stop    chan struct{}
	done    chan struct{}
	release func(ctx context.Context) error
}

func startLease(ttl time.Duration, renew func(context.Context) error, release func(context.Context) error) *renewal {
	l := &renewal{lost: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{}), release: release}
	go func() {
		defer close(l.done)
		t := time.NewTicker(ttl / 3)
		defer t.Stop()
		for {
			select {
			case <-l.stop:
				return
			case <-t.C:
				ctx, cancel := context.WithTimeout(context.Background(), ttl/3)
				err := renew(ctx)
				cancel()
				if err != nil {
					close(l.lost)
					return
				}
			}
		}
	}()
	return l
}

func (l *renewal) Lost() <-chan struct{} { return l.lost }

func (l *renewal) Release(ctx context.Context) error {
	select {
	case <-l.stop:
		return nil
	default:
	}
	close(l.stop)
	<-l.done
	return l.release(ctx)
}

// WhileHeld returns a context that is cancelled, with cause, as soon as l is lost: work done
// under a lock stops at once when another process may already hold it.
func WhileHeld(ctx context.Context, l Lock, cause error) (context.Context, context.CancelCauseFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	go func() {
		select {
		case <-l.Lost():
			cancel(cause)
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}
