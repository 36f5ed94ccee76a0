// Package progress carries how far a long operation (a backup, a restore, a drill, a verify) has
// come from the layers that move the bytes (the snapshot set, the repository) to whoever shows it
// (a terminal bar, log lines, JSON events). It lives in the context, so the layers between need
// no new parameters, and it is a no-op when nobody watches.
package progress

import (
	"context"
	"io"
	"strings"
)

// Unit is one piece of work: a partition, a table's COPY, an object read back. Bytes and Rows
// are what a plan expects of it (Plan) and are ignored elsewhere.
type Unit struct {
	Source    string `json:"source,omitempty"`
	Table     string `json:"table,omitempty"`
	Partition string `json:"partition,omitempty"`
	// Object is the repository object the unit reads, when the reader knows only that (the
	// repository serving a restore); the plan names it.
	Object string `json:"object,omitempty"`
	Bytes  int64  `json:"-"`
	Rows   int64  `json:"-"`
}

// String is the unit as a person reads it: "clickhouse default.traces 202605".
func (u Unit) String() string {
	var parts []string
	for _, s := range []string{u.Source, u.Table, u.Partition} {
		if s != "" {
			parts = append(parts, s)
		}
	}
	if len(parts) == 0 && u.Object != "" {
		return "object " + u.Object
	}
	return strings.Join(parts, " ")
}

// Reporter receives progress. Its methods are called from the goroutines doing the work and
// must be cheap and safe for concurrent use.
type Reporter interface {
	// Plan adds a unit to the expected totals before the work starts (or as it is discovered).
	Plan(u Unit)
	// Begin says work on a unit started: it is the one a person sees as current.
	Begin(u Unit)
	// Add counts bytes moved and rows done.
	Add(bytes, rows int64)
	// End says a unit completed; a planned object's rows count then, since a reader of
	// stored bytes cannot count rows.
	End(u Unit)
}

type nop struct{}

func (nop) Plan(Unit)        {}
func (nop) Begin(Unit)       {}
func (nop) Add(int64, int64) {}
func (nop) End(Unit)         {}

// Nop discards everything: what From returns when nobody watches.
var Nop Reporter = nop{}

type ctxKey struct{}

// With returns a context that carries r.
func With(ctx context.Context, r Reporter) context.Context {
	return context.WithValue(ctx, ctxKey{}, r)
}

// From returns the context's reporter, or Nop.
func From(ctx context.Context) Reporter {
	if r, ok := ctx.Value(ctxKey{}).(Reporter); ok {
		return r
	}
	return Nop
}

// Reader counts the bytes read through r as they stream; with end set it also ends u at a clean
// EOF (one that the reader below, e.g. the repository's checksum check, let through).
func Reader(rep Reporter, r io.Reader, u Unit, end bool) io.Reader {
	if rep == Nop {
		return r
	}
	return &reader{r: r, rep: rep, u: u, end: end}
}

type reader struct {
	r     io.Reader
	rep   Reporter
	u     Unit
	end   bool
	begun bool
	ended bool
	n     int64 // bytes counted
}

// Uncount takes back the bytes a Reader counted, for a stream whose work failed and will be
// done again (an export that broke off) or not at all: progress is what was kept.
func Uncount(r io.Reader) {
	if c, ok := r.(*reader); ok && c.n != 0 {
		c.rep.Add(-c.n, 0)
		c.n = 0
	}
}

func (c *reader) Read(p []byte) (int, error) {
	if !c.begun {
		c.begun = true
		c.rep.Begin(c.u)
	}
	n, err := c.r.Read(p)
	if n > 0 {
		c.n += int64(n)
		c.rep.Add(int64(n), 0)
	}
	if err == io.EOF && c.end && !c.ended {
		c.ended = true
		c.rep.End(c.u)
	}
	return n, err
}

// ReadCloser is Reader for a stream that must be closed.
func ReadCloser(rep Reporter, rc io.ReadCloser, u Unit, end bool) io.ReadCloser {
	if rep == Nop {
		return rc
	}
	return struct {
		io.Reader
		io.Closer
	}{Reader(rep, rc, u, end), rc}
}
