package devstack

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"runtime"
)

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
	cmd := exec.CommandContext(ctx, "bash", Script(), verb, svc)
	cmd.Env = append(cmd.Environ(), "STACK_DIR="+e.Dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("stack.sh %s %s: %w\n%s", verb, svc, err, out)
	}
	return nil
}
