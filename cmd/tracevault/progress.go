package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"

	"github.com/tracevault/tracevault/snapshot/progress"
	"github.com/tracevault/tracevault/snapshot/store"
)

// progressHelp is how a long command shows its progress; the commands that have it add it to
// their help.
const progressHelp = `

Progress goes to stderr: on a terminal a bar (bytes and rows done, rate, ETA, the current
table and partition); otherwise an info log line "progress" every --progress-interval; with
--json, stderr carries one JSON object per line: log records (they have "msg"), progress events
{"type":"progress",...} and, always last, {"type":"result","exit_code":N,...} with the error
and what was done (stdout still holds the command's result document). Ctrl-C stops cleanly
and says what was done and what was not; a second Ctrl-C kills at once.`

// progressRun shows one operation's progress on stderr until finish.
type progressRun struct {
	a       *app
	op      string
	tracker *progress.Tracker
	stderr  io.Writer
	logOut  *slog.Logger // the app's logger before the bar took stderr over

	bar  *mpb.Bar
	pbar *mpb.Progress

	stop     chan struct{}
	wg       sync.WaitGroup
	finished bool
	final    progress.State
	summary  string
}

type progressEvent struct {
	Type string `json:"type"` // "progress" or "result"
	Op   string `json:"op"`
	Time string `json:"time"`
	progress.State
	ExitCode    *int   `json:"exit_code,omitempty"`
	Error       string `json:"error,omitempty"`
	Interrupted bool   `json:"interrupted,omitempty"`
	Summary     string `json:"summary,omitempty"`
}

// startProgress starts showing op's progress and puts its tracker in the command's context,
// where the snapshot set and the repository report to it. Call finish when the work returns.
func (a *app) startProgress(cmd *cobra.Command, op string) *progressRun {
	p := &progressRun{a: a, op: op, tracker: progress.NewTracker(), stderr: cmd.ErrOrStderr(), logOut: a.log, stop: make(chan struct{})}
	cmd.SetContext(progress.With(cmd.Context(), p.tracker))
	a.progress = p
	switch {
	case a.json:
		// Events and log records share stderr from different goroutines: one line at a time.
		p.stderr = &lockedWriter{w: p.stderr}
		a.log = slog.New(slog.NewJSONHandler(p.stderr, a.handlerOptions()))
		slog.SetDefault(a.log)
		p.every(func(s progress.State) { p.event(progressEvent{Type: "progress", State: s}) })
	case isTerminal(p.stderr):
		p.startBar()
	default:
		p.every(func(s progress.State) {
			a.log.Info("progress", "op", op, "bytes", s.Bytes, "expected_bytes", s.ExpectedBytes, "rows", s.Rows,
				"bytes_per_second", int64(s.Rate), "eta_seconds", int64(s.ETA), "units", s.Units,
				"source", s.Current.Source, "table", s.Current.Table, "partition", s.Current.Partition)
		})
	}
	return p
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// every calls show each --progress-interval until finish.
func (p *progressRun) every(show func(progress.State)) {
	if p.a.progressInterval <= 0 {
		return
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(p.a.progressInterval)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				show(p.tracker.State())
			}
		}
	}()
}

func (p *progressRun) startBar() {
	p.pbar = mpb.New(mpb.WithOutput(p.stderr), mpb.WithWidth(30), mpb.WithRefreshRate(150*time.Millisecond))
	// Log lines print above the bar instead of through it.
	p.a.log = slog.New(slog.NewTextHandler(p.pbar, p.a.handlerOptions()))
	slog.SetDefault(p.a.log)
	state := func() progress.State { return p.tracker.State() }
	// The total grows as the work is sized; the bar completes only when finish says so.
	p.bar = p.pbar.AddBar(0,
		mpb.PrependDecorators(decor.Name(p.op+" "), decor.Any(func(decor.Statistics) string {
			return fmt.Sprintf("%-50s", state().Current.String())
		})),
		mpb.AppendDecorators(decor.Percentage(decor.WCSyncSpace), decor.Any(func(decor.Statistics) string {
			return " " + describeState(state())
		})),
	)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			s := state()
			p.bar.SetTotal(max(s.ExpectedBytes, s.Bytes+1), false)
			p.bar.SetCurrent(s.Bytes)
			select {
			case <-p.stop:
				return
			case <-t.C:
			}
		}
	}()
}

// describeState is the numbers a person reads: done of expected, rows, rate, ETA.
func describeState(s progress.State) string {
	done := store.HumanBytes(s.Bytes)
	if s.ExpectedBytes > 0 {
		done += " / ~" + store.HumanBytes(s.ExpectedBytes)
	}
	eta := "ETA ?"
	if s.ETA >= 0 {
		eta = "ETA " + (time.Duration(s.ETA) * time.Second).String()
	}
	return fmt.Sprintf("%s  %d rows  %d/%d done  %s/s  %s", done, s.Rows, s.Units, s.PlannedUnits, store.HumanBytes(int64(s.Rate)), eta)
}

// finish stops the display, completing the bar on success, and on an interruption or failure
// prints what was done and what was not. Commands call it before printing their result.
func (p *progressRun) finish(ctx context.Context, err error) {
	if p.finished {
		return
	}
	p.finished = true
	close(p.stop)
	p.wg.Wait()
	s := p.tracker.State()
	p.final = s
	if p.bar != nil {
		if err == nil {
			p.bar.SetCurrent(s.Bytes)
			p.bar.SetTotal(-1, true)
		} else {
			p.bar.Abort(false)
		}
		p.pbar.Wait()
		p.a.log = p.logOut
		slog.SetDefault(p.logOut)
	}
	if err == nil {
		if !p.a.json && p.bar == nil {
			p.a.log.Info("progress done", "op", p.op, "bytes", s.Bytes, "rows", s.Rows, "units", s.Units, "seconds", s.Elapsed)
		}
		return
	}
	what := "failed"
	if ctx.Err() != nil || errors.Is(err, context.Canceled) {
		what = "interrupted"
	}
	p.summary = failureSummary(p.op, what, s)
	if !p.a.json {
		fmt.Fprintln(p.stderr, p.summary)
	}
}

// failureSummary says what a failed or interrupted run did and what it was doing when it
// stopped: the units still open (a failed unit never ends), not whichever unit began last,
// which may have finished after the failure.
func failureSummary(op, what string, s progress.State) string {
	done := fmt.Sprintf("done %d of %d planned units", s.Units, s.PlannedUnits)
	if s.Units > s.PlannedUnits {
		done = fmt.Sprintf("done %d units (%d planned ahead)", s.Units, s.PlannedUnits)
	}
	stopped := "stopped after " + orNothing(s.Current.String())
	if len(s.Open) > 0 {
		names := make([]string, len(s.Open))
		for i, u := range s.Open {
			names[i] = u.String()
		}
		slices.Sort(names)
		stopped = "unfinished: " + strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s %s after %.1fs: %s, %s of ~%s, %d rows; %s",
		op, what, s.Elapsed, done, store.HumanBytes(s.Bytes), store.HumanBytes(s.ExpectedBytes), s.Rows, stopped)
}

func orNothing(s string) string {
	if s == "" {
		return "nothing yet"
	}
	return s
}

// progressDone finishes the running command's progress display, if it has one, before the
// command prints its result.
func (a *app) progressDone(ctx context.Context, err error) {
	if a.progress != nil {
		a.progress.finish(ctx, err)
	}
}

// event writes one JSON line on stderr.
func (p *progressRun) event(e progressEvent) {
	e.Op, e.Time = p.op, time.Now().UTC().Format(time.RFC3339Nano)
	b, err := json.Marshal(e)
	if err != nil {
		return
	}
	p.stderr.Write(append(b, '\n'))
}

// result ends a --json run's stderr with its outcome, after everything else was written.
func (p *progressRun) result(ctx context.Context, code int, err error) {
	p.finish(ctx, err)
	if !p.a.json {
		return
	}
	e := progressEvent{Type: "result", State: p.final, ExitCode: &code, Summary: p.summary}
	if err != nil {
		e.Error = err.Error()
		e.Interrupted = ctx.Err() != nil
	}
	p.event(e)
}
