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
	cmd := exec.CommandContext(ctx, "bash", e.Script(), verb, svc)
	cmd.Env = append(cmd.Environ(), "STACK_DIR="+e.Dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("stack.sh %s %s: %w\n%s", verb, svc, err, out)
	}
	return nil
}

// Script is the path of stack.sh. The stack's directory is not always the checkout's .stack (STACK_DIR
// elsewhere), so the script next to this source file comes first.
func (e *Env) Script() string {
	if _, self, _, ok := runtime.Caller(0); ok {
		own := filepath.Join(filepath.Dir(self), "stack.sh")
		if _, err := os.Stat(own); err == nil {
			return own
		}
	}
	return filepath.Join(e.Dir, "..", "deploy", "stack", "stack.sh")
}
