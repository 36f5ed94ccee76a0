package stack

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
)

// Stop stops one service of the stack (pg, zk, ch1, ch2, ch3, azurite), for tests of failures.
func (e *Env) Stop(ctx context.Context, svc string) error { return e.ctl(ctx, "stop", svc) }

// Start starts one service again; a ClickHouse replica whose data dir was removed starts empty.
func (e *Env) Start(ctx context.Context, svc string) error { return e.ctl(ctx, "start", svc) }

func (e *Env) ctl(ctx context.Context, verb, svc string) error {
	script := filepath.Join(e.Dir, "..", "deploy", "stack", "stack.sh")
	cmd := exec.CommandContext(ctx, "bash", script, verb, svc)
	cmd.Env = append(cmd.Environ(), "STACK_DIR="+e.Dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("stack.sh %s %s: %w\n%s", verb, svc, err, out)
	}
	return nil
}
