package jobs

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestRunOutcome: the history names what ended a run. A deadline inside the run (a lease
// renewal's own request timeout) is not the job's timeout; a chaos run once read "timed out
// after 3m0s" 106 s into a run that had lost its lease.
func TestRunOutcome(t *testing.T) {
	live := func() context.Context { return context.Background() }
	expired := func() context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
		t.Cleanup(cancel)
		<-ctx.Done()
		return ctx
	}
	claimLost := func() context.Context {
		ctx, cancel := context.WithCancelCause(context.Background())
		cancel(errors.New("lost the job's claim (zookeeper session or lease expired)"))
		return ctx
	}
	stopped := func() context.Context {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		return ctx
	}
	renewal := fmt.Errorf("renew lease locks/repository: %w", context.DeadlineExceeded)
	tests := []struct {
		name          string
		ctx           func() context.Context
		daemonStopped bool
		err           error
		outcome, text string
	}{
		{"success", live, false, nil, OutcomeSucceeded, ""},
		{"a failure keeps its words", live, false, errors.New("dial clickhouse: connection refused"), OutcomeFailed, "dial clickhouse: connection refused"},
		{"a deadline inside the run is not the job's", live, false, renewal, OutcomeFailed, renewal.Error()},
		{"the job's own deadline", expired, false, renewal, OutcomeFailed, "timed out after 3m0s: " + renewal.Error()},
		{"a lost claim", claimLost, false, context.Canceled, OutcomeInterrupted, "lost the job's claim"},
		{"the daemon stopping", stopped, true, context.Canceled, OutcomeInterrupted, "daemon stopped: context canceled"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			outcome, text := runOutcome(tc.ctx(), tc.daemonStopped, 3*time.Minute, tc.err)
			if outcome != tc.outcome || !strings.HasPrefix(text, tc.text) || (tc.text == "" && text != "") {
				t.Errorf("got %s %q, want %s %q", outcome, text, tc.outcome, tc.text)
			}
		})
	}
}
