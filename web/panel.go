package web

import (
	"context"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// panel serves one expensive read (the cluster check, ZooKeeper's health, the migrations'
// databases, the catalog) from a result at most ttl old, computed by one request at a time for
// all: however many clients ask, the backend sees one connection per ttl, never one per request.
// Errors are kept as long as results, so a dead backend is not retried by every request either.
type panel[T any] struct {
	read    func(context.Context) (T, error)
	timeout time.Duration
	ttl     time.Duration
	group   singleflight.Group

	mu  sync.Mutex
	at  time.Time
	val T
	err error
}

type panelResult[T any] struct {
	val T
	err error
}

func newPanel[T any](read func(context.Context) (T, error), timeout, ttl time.Duration) *panel[T] {
	return &panel[T]{read: read, timeout: timeout, ttl: ttl}
}

// get returns the cached result, or waits for the one computation in flight. The computation
// runs detached from the request that started it (bounded by the panel timeout), so a client
// that goes away does not fail the others waiting for the same result.
func (p *panel[T]) get(ctx context.Context) (T, error) {
	p.mu.Lock()
	if !p.at.IsZero() && time.Since(p.at) < p.ttl {
		v, err := p.val, p.err
		p.mu.Unlock()
		return v, err
	}
	p.mu.Unlock()
	ch := p.group.DoChan("", func() (any, error) {
		v, err := bounded(context.WithoutCancel(ctx), p.timeout, p.read)
		p.mu.Lock()
		p.val, p.err, p.at = v, err, time.Now()
		p.mu.Unlock()
		return panelResult[T]{v, err}, nil
	})
	select {
	case res := <-ch:
		r := res.Val.(panelResult[T])
		return r.val, r.err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
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
