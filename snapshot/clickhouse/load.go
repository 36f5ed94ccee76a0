package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"
)

// loadEndWait bounds how long Load waits, after its connection broke, for the server to stop
// running the INSERT.
var loadEndWait = time.Minute

// Load runs an INSERT whose data is body (INSERT ... FORMAT Native), streamed as it is read. The
// request is watched for a stall: the server reading no data, or not answering after the last
// byte, for StallTimeout.
//
// When the connection breaks before the server answered, the error has BrokenOff in its chain,
// and Load returns only once the server no longer runs the INSERT: the blocks it had inserted
// stay, so a caller loading again first removes them (a restore drops the staging partition),
// and nothing of the broken INSERT can land after that. Where that cannot be confirmed within a
// minute, the error says so and is not BrokenOff. When the server answered with an exception,
// even while the data was still being sent, the error is its words.
func (h *HTTP) Load(ctx context.Context, sql string, body io.Reader) error {
	id, err := newQueryID()
	if err != nil {
		return err
	}
	w := h.watch(ctx, "neither read data nor answered")
	err = h.exec(w.ctx, sql, &touchingReader{r: body, w: w}, "query_id="+url.QueryEscape(id))
	w.stop()
	if err == nil || !BrokenOff(err) {
		return err
	}
	err = w.cause(err)
	var unsent *unsentError
	if ctx.Err() != nil || errors.As(err, &unsent) {
		return err
	}
	if endErr := h.awaitEnd(ctx, id); endErr != nil {
		return h.scrub(fmt.Errorf("%v; the INSERT is not sent again, as the server may still be running it: %w", err, endErr))
	}
	return err
}

// touchingReader is data being sent, which tells the stall watch each time more is taken.
type touchingReader struct {
	r io.Reader
	w *stallWatch
}

func (t *touchingReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	t.w.touch()
	return n, err
}

// awaitEnd waits until the server runs no query of id (see awaitQueryEnd).
func (h *HTTP) awaitEnd(ctx context.Context, id string) error {
	exec := func(ctx context.Context, sql string) error { return h.Exec(ctx, sql, nil) }
	return awaitQueryEnd(ctx, h.Addr, id, loadEndWait, exec, h.runs)
}

// awaitQueryEnd waits, for up to wait, until the server at addr runs no query of id. It asks
// the server to cancel it first: a server that has not noticed the broken connection would
// otherwise go on with it (an INSERT until its receive timeout). exec runs a statement and runs
// asks whether the query runs, each through the interface the query was sent on.
func awaitQueryEnd(ctx context.Context, addr, id string, wait time.Duration, exec func(context.Context, string) error, runs func(context.Context, string) (bool, error)) error {
	deadline := time.Now().Add(wait)
	kill := "KILL QUERY WHERE query_id = " + QuoteString(id) + " ASYNC"
	killed := false
	var last error
	for {
		if !killed {
			// Needs no more than the user's own queries; a user who may not kill them waits.
			killed = exec(ctx, kill) == nil
		}
		running, err := runs(ctx, id)
		if err == nil && !running {
			return nil
		}
		last = err
		if last == nil {
			last = fmt.Errorf("clickhouse %s still runs query %s", addr, id)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %s: %w", wait, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// countRunningSQL counts the server's running queries of id: one or none.
func countRunningSQL(id string) string {
	return "SELECT count() FROM system.processes WHERE query_id = " + QuoteString(id)
}

// runs says whether the server runs a query of id now.
func (h *HTTP) runs(ctx context.Context, id string) (bool, error) {
	rc, err := h.Query(ctx, countRunningSQL(id), nil)
	if err != nil {
		return false, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, 64))
	if err != nil {
		return false, err
	}
	return strings.TrimSpace(string(b)) != "0", nil
}
