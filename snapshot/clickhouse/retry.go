package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"
)

// errBrokenOff is in the chain of an error of the HTTP interface when the connection failed
// rather than the query: the server went away, reset or closed the connection, or stalled. Only
// a failure the server did not answer has it; the work may be done again.
var errBrokenOff = errors.New("the connection broke off")

// unsentError is a broken-off request that never had a connection: no server saw it (nothing
// listening, a server restarting).
type unsentError struct{ error }

func (e *unsentError) Unwrap() error { return e.error }

// BrokenOff says whether err is a failure of the connection rather than of the query or of the
// data: a reset, a broken pipe, a connection closed before the server answered, a server
// restarting, a stall. A query the server refused or failed (an exception: a type mismatch, a
// missing table) is not, nor is a failure to read the data sent (a damaged object): both would
// fail the same way again.
func BrokenOff(err error) bool { return errors.Is(err, errBrokenOff) }

// Attempts bounds how often Retry runs one transfer (a partition's export or load, a copy
// between replicas) whose connection keeps breaking off: a blip costs the transfer, not the
// backup or the restore, and a connection that never holds ends it with its cause.
const Attempts = 3

// retryWait is the wait before a transfer's next attempt: 1 s, then 4 s.
var retryWait = func(attempt int) time.Duration { return time.Duration(attempt*attempt) * time.Second }

// Retry runs transfer until it succeeds, fails other than by a broken connection (BrokenOff), or
// has run Attempts times, waiting between attempts. Each attempt must start over from the
// beginning: a fresh stream, and a target emptied of what the attempt before may have written.
// Each retry is logged as msg with args; giving up names the attempts and the last cause
// ("after 3 attempts: ..."). A repository's own failures are not retried here: its backend
// retries on its own.
func Retry(ctx context.Context, log *slog.Logger, msg string, args []any, transfer func() error) error {
	for attempt := 1; ; attempt++ {
		err := transfer()
		if again(ctx, log, err, attempt, msg, args...) {
			continue
		}
		if attempt >= Attempts && BrokenOff(err) && ctx.Err() == nil {
			return fmt.Errorf("after %d attempts: %w", attempt, err)
		}
		return err
	}
}

// again says whether a transfer that failed with err on its attempt'th run runs again: its
// connection broke off, it has run fewer than Attempts times and the job goes on. It logs msg
// with args and waits (retryWait) before saying so.
func again(ctx context.Context, log *slog.Logger, err error, attempt int, msg string, args ...any) bool {
	if err == nil || !BrokenOff(err) || attempt >= Attempts || ctx.Err() != nil {
		return false
	}
	if log != nil {
		log.Warn(msg, slices.Concat(args, []any{"attempt", attempt + 1, "of", Attempts, "err", err})...)
	}
	select {
	case <-ctx.Done():
		return false
	case <-time.After(retryWait(attempt)):
		return true
	}
}
