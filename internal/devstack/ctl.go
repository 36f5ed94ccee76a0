package devstack

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// DisruptiveVar is the environment variable that allows tests to stop, kill or restart the
// shared stack's services. `make test` and `make chaos` set it; a plain `go test ./...`, which
// runs packages in parallel against the same servers, does not, so it cannot wreck the stack
// under the other packages' tests.
const DisruptiveVar = "TRACEVAULT_DISRUPTIVE"

// Disruptive skips a test that stops, kills or restarts shared services unless DisruptiveVar is
// set to 1. Call it first in such a test.
func Disruptive(tb testing.TB) {
	tb.Helper()
	if os.Getenv(DisruptiveVar) != "1" {
		tb.Skipf("stops shared services of the stack: runs only with %s=1 (make test and make chaos set it, and run packages one at a time)", DisruptiveVar)
	}
}

var errNotDisruptive = errors.New("refusing to stop or start a service of the shared stack: set " + DisruptiveVar + "=1 (make test does), and call devstack.Disruptive(t) first in the test")

// Stop stops one service of the stack (pg, zk, ch1, ch2, ch3, azurite, ch-modern), for tests of
// failures.
func (e *Env) Stop(ctx context.Context, svc string) error { return e.ctl(ctx, "stop", svc) }

// Start starts one service again; a ClickHouse replica whose data dir was removed starts empty.
func (e *Env) Start(ctx context.Context, svc string) error { return e.ctl(ctx, "start", svc) }

// Script is the path of stack.sh in this source tree. It is found from this file rather than
// from the state dir, which TRACEVAULT_STACK_DIR may put outside the checkout.
func Script() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "stack.sh")
}

func (e *Env) ctl(ctx context.Context, verb, svc string) error {
	if os.Getenv(DisruptiveVar) != "1" {
		return fmt.Errorf("stack.sh %s %s: %w", verb, svc, errNotDisruptive)
	}
	cmd := exec.CommandContext(ctx, "bash", Script(), verb, svc)
	cmd.Env = append(cmd.Environ(), "STACK_DIR="+e.Dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("stack.sh %s %s: %w\n%s", verb, svc, err, out)
	}
	return nil
}

// PID is the process id stack.sh recorded for a service.
func (e *Env) PID(svc string) (int, error) {
	raw, err := os.ReadFile(filepath.Join(e.Dir, svc+".pid"))
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		return 0, fmt.Errorf("%s pid file: %w", svc, err)
	}
	return pid, nil
}

// Alive says whether the process stack.sh recorded for a service still runs.
func (e *Env) Alive(svc string) bool {
	pid, err := e.PID(svc)
	return err == nil && processAlive(pid)
}

// Kill kills a service's process group with SIGKILL, as a crash or the OOM killer would (Stop
// shuts it down cleanly), and waits until it is gone. Start brings it back.
func (e *Env) Kill(svc string) error {
	if os.Getenv(DisruptiveVar) != "1" {
		return fmt.Errorf("kill -9 %s: %w", svc, errNotDisruptive)
	}
	pid, err := e.PID(svc)
	if err != nil {
		return fmt.Errorf("kill %s: %w", svc, err)
	}
	if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			return fmt.Errorf("kill -9 %s (pid %d): %w", svc, pid, err)
		}
	}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if !processAlive(pid) {
			return nil
		}
	}
	return fmt.Errorf("%s (pid %d) still alive 30 s after kill -9", svc, pid)
}

// processAlive says whether pid runs and is not a zombie.
func processAlive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	return err == nil && !strings.Contains(string(stat), ") Z ")
}
