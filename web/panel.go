package web

import (
	"context"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// refreshBound bounds one read of a panel's backend. A request waits only the panel's timeout
// for it; the read goes on in the background up to this bound, so on a loaded machine a read
// slower than the timeout still finishes and fills the cache for the next request, instead of
// being abandoned and started again by every request (which is how a busy repository kept the
// status page answering 503 for minutes).
const refreshBound = 30 * time.Second

// panel serves one expensive read (the cluster check, ZooKeeper's health, the migrations'
// databases, the catalog) from a result at most ttl old, computed by one request at a time for
// all: however many clients ask, the backend sees one connection per ttl, never one per request.
// Errors are kept as long as results, so a dead backend is not retried by every request either.
type panel[T any] struct {
	read    func(context.Context) (T, error)
	timeout time.Duration // how long a request waits for a fresh read
	ttl     time.Duration
	group   singleflight.Group

	mu  sync.Mutex
	at  time.Time
	val T
	err error
	// good is the newest successful read, served (marked stale) while a fresh read overruns.
	good   T
	goodAt time.Time
}

type panelResult[T any] struct {
	val T
	err error
}

// answer is what a request gets from a panel. Stale is non-zero when the fresh read did not
// answer within the panel's timeout and the request got the newest successful read instead:
// it is that read's age.
type answer[T any] struct {
	val   T
	err   error
	stale time.Duration
}

func newPanel[T any](read func(context.Context) (T, error), timeout, ttl time.Duration) *panel[T] {
	return &panel[T]{read: read, timeout: timeout, ttl: ttl}
}

// get returns the panel's answer, stale or fresh; see answer.
func (p *panel[T]) get(ctx context.Context) (T, error) {
	a := p.answer(ctx)
	return a.val, a.err
}

// answer returns the cached result, or waits up to the panel's timeout for the one read in
// flight. The read runs detached from the request that started it (bounded by refreshBound), so
// a client that goes away does not fail the others waiting for the same result. A read that
// overruns the timeout is answered with the newest successful read, when the last read
// succeeded: a backend that answered an error is shown in error, never hidden behind an older
// success.
func (p *panel[T]) answer(ctx context.Context) answer[T] {
	p.mu.Lock()
	if !p.at.IsZero() && time.Since(p.at) < p.ttl {
		a := answer[T]{val: p.val, err: p.err}
		p.mu.Unlock()
		return a
	}
	p.mu.Unlock()
	ch := p.group.DoChan("", func() (any, error) {
		v, err := bounded(context.WithoutCancel(ctx), max(p.timeout, refreshBound), p.read)
		p.mu.Lock()
		p.val, p.err, p.at = v, err, time.Now()
		if err == nil {
			p.good, p.goodAt = v, p.at
		}
		p.mu.Unlock()
		return panelResult[T]{v, err}, nil
	})
	wait := time.NewTimer(p.timeout)
	defer wait.Stop()
	select {
	case res := <-ch:
		r := res.Val.(panelResult[T])
		return answer[T]{val: r.val, err: r.err}
	case <-wait.C:
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.err == nil && !p.goodAt.IsZero() {
			return answer[T]{val: p.good, stale: time.Since(p.goodAt)}
		}
		if p.err != nil && !p.at.IsZero() {
			return answer[T]{err: p.err}
		}
		return answer[T]{err: fmt.Errorf("no answer within %s (the read goes on; reload in a few seconds)", p.timeout)}
	case <-ctx.Done():
		return answer[T]{err: ctx.Err()}
	}
}

// forget drops the cached result: after an action the next read shows its effect.
func (p *panel[T]) forget() {
	p.mu.Lock()
	p.at = time.Time{}
	p.mu.Unlock()
}

// maxKeyedPanels bounds a keyedPanel's memory: ids are chosen by the client.
const maxKeyedPanels = 256

// keyedPanel caches a read per key (one snapshot's manifest per id) like panel, and runs the
// reads of different keys one at a time: finding one snapshot decodes every manifest, and a
// client asking for many ids must not make the daemon decode the catalog many times at once.
type keyedPanel[T any] struct {
	read    func(context.Context, string) (T, error)
	timeout time.Duration
	ttl     time.Duration
	one     chan struct{} // a read in progress

	mu     sync.Mutex
	panels map[string]*panel[T]
}

func newKeyedPanel[T any](read func(context.Context, string) (T, error), timeout, ttl time.Duration) *keyedPanel[T] {
	return &keyedPanel[T]{read: read, timeout: timeout, ttl: ttl, one: make(chan struct{}, 1), panels: map[string]*panel[T]{}}
}

func (k *keyedPanel[T]) get(ctx context.Context, key string) (T, error) {
	k.mu.Lock()
	p := k.panels[key]
	if p == nil {
		if len(k.panels) >= maxKeyedPanels {
			clear(k.panels) // cheaper than tracking age; the next reads fill it again
		}
		p = newPanel(func(ctx context.Context) (T, error) {
			select {
			case k.one <- struct{}{}:
				defer func() { <-k.one }()
			case <-ctx.Done():
				var zero T
				return zero, ctx.Err()
			}
			return k.read(ctx, key)
		}, k.timeout, k.ttl)
		k.panels[key] = p
	}
	k.mu.Unlock()
	return p.get(ctx)
}
