package stack

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
)

// Stop stops one service of the stack (pg, zk, ch1, ch2, ch3, azurite), for tests of failures.
func (e *Env) Stop(ctx context.Context, svc string) error { return e.ctl(ctx, "stop", svc) }

// Start starts one service again; a ClickHouse replica whose data dir was removed starts empty.
func (e *Env) Start(ctx context.Context, svc string) error { return e.ctl(ctx, "start", svc) }

func (e *Env) ctl(ctx context.Context, verb, svc string) error {
	// The stack's directory is not always the checkout's .stack (STACK_DIR elsewhere), so the
	// script next to this source file comes first.
	script := filepath.Join(e.Dir, "..", "deploy", "stack", "stack.sh")
	if _, self, _, ok := runtime.Caller(0); ok {
		if own := filepath.Join(filepath.Dir(self), "stack.sh"); fileExists(own) {
			script = own
		}
	}
	cmd := exec.CommandContext(ctx, "bash", script, verb, svc)
	cmd.Env = append(cmd.Environ(), "STACK_DIR="+e.Dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("stack.sh %s %s: %w\n%s", verb, svc, err, out)
	}
	return nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
