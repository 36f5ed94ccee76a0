package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/tracevault/tracevault/jobs"
)

// Exit codes are a contract with scripts: see `tracevault --help`.
const (
	exitOK     = 0
	exitFailed = 1 // the operation failed, or problems were found
	exitUsage  = 2 // bad flags, arguments or configuration
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		// The first Ctrl-C stops cleanly; after it, the default handling is back, so a second
		// one kills a run that takes too long to wind down.
		<-ctx.Done()
		stop()
	}()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one command line and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	// A CPU profile of the whole command, for `make bench` (bench/) to say what limits a step.
	if path := os.Getenv("TRACEVAULT_CPUPROFILE"); path != "" {
		if f, err := os.Create(path); err != nil {
			fmt.Fprintln(stderr, "warning: TRACEVAULT_CPUPROFILE:", err)
		} else if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(stderr, "warning: TRACEVAULT_CPUPROFILE:", err)
			f.Close()
		} else {
			defer func() { pprof.StopCPUProfile(); f.Close() }()
		}
	}
	app := newApp()
	root := app.rootCommand()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	code := exitOK
	var ce *codeError
	switch {
	case err == nil:
	case errors.As(err, &ce):
		code = ce.code
	default:
		// Anything cobra itself rejects (unknown command, bad flag, wrong arg count) is usage.
		code = exitUsage
	}
	if p := app.progress; p != nil && app.json {
		// The result event, last on stderr, carries the error.
		p.result(ctx, code, err)
		return code
	}
	switch {
	case err == nil:
	case ce != nil:
		if ce.err != nil && !ce.silent {
			fmt.Fprintln(root.ErrOrStderr(), "error:", ce.err)
		}
	default:
		fmt.Fprintln(root.ErrOrStderr(), "error:", err)
		fmt.Fprintln(root.ErrOrStderr(), "Run 'tracevault --help' for usage.")
	}
	if app.progress != nil {
		app.progress.finish(ctx, err)
	}
	return code
}

// codeError carries the exit code a failure should produce.
type codeError struct {
	code   int
	err    error
	silent bool // already reported in full (e.g. a list of config problems)
}

func (e *codeError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}

func (e *codeError) Unwrap() error { return e.err }

func failed(err error) error { return &codeError{code: exitFailed, err: err} }
func usage(err error) error  { return &codeError{code: exitUsage, err: err} }

// jobError is the exit code a job's error produces: usage for what was asked wrongly
// (jobs.ErrUsage), failed for the rest.
func jobError(err error) error {
	if errors.Is(err, jobs.ErrUsage) {
		return usage(err)
	}
	return failed(err)
}
