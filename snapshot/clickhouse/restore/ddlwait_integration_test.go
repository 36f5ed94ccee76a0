package restore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	chgo "github.com/ClickHouse/clickhouse-go/v2"

	"github.com/tracevault/tracevault/internal/devstack"
	"github.com/tracevault/tracevault/snapshot/clickhouse"
)

// TestIsDDLTimeout: only the server's distributed DDL timeout, wrapped or not, makes a restore
// wait for the replicas; any other error fails the step as before.
func TestIsDDLTimeout(t *testing.T) {
	ddl := &chgo.Exception{Code: 159, Message: "Watching task /clickhouse/task_queue/ddl/query-0000009654 is executing longer than distributed_ddl_task_timeout (=180) seconds."}
	for _, c := range []struct {
		name string
		err  error
		want bool
	}{
		{"the DDL timeout", ddl, true},
		{"wrapped", fmt.Errorf("create-table: %w", ddl), true},
		{"another timeout", &chgo.Exception{Code: 159, Message: "Timeout exceeded: elapsed 31 seconds"}, false},
		{"another code", &chgo.Exception{Code: 57, Message: "Table already exists"}, false},
		{"no exception", errors.New("read: connection reset by peer"), false},
	} {
		if got := isDDLTimeout(c.err); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

// TestWaitCreatedWaitsForALaggingReplica: a table two replicas have and the third gets later (as
// a replica whose DDL worker is behind runs a queued CREATE) ends the wait once it appears; a
// table the third never gets fails the wait naming that replica; a database every replica has
// needs no wait.
func TestWaitCreatedWaitsForALaggingReplica(t *testing.T) {
	env := devstack.Require(t)
	ctx := context.Background()
	db := env.CHDatabase(t, "it_ddlwait")
	list, _, err := clickhouse.Connect(ctx, env.CHNative, env.CHHTTP, clickhouse.ConnOptions{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	servers := map[string]*clickhouse.Server{}
	for _, s := range list {
		servers[s.Addr] = s
	}
	lagging := env.CHNative[len(env.CHNative)-1]
	createOnAllBut := func(table string) {
		for i := range len(env.CHHTTP) - 1 {
			if err := env.CHExec(i, "CREATE TABLE "+db+"."+table+" (x UInt8) ENGINE = Memory"); err != nil {
				t.Fatal(err)
			}
		}
	}

	createOnAllBut("late")
	go func() {
		time.Sleep(time.Second)
		_ = env.CHExec(len(env.CHHTTP)-1, "CREATE TABLE "+db+".late (x UInt8) ENGINE = Memory")
	}()
	if err := waitCreated(ctx, servers, db+".late", time.Minute, 100*time.Millisecond); err != nil {
		t.Errorf("a table the lagging replica creates a second later: %v", err)
	}

	createOnAllBut("never")
	err = waitCreated(ctx, servers, db+".never", time.Second, 100*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), lagging) || strings.Contains(err.Error(), env.CHNative[0]) || !strings.Contains(err.Error(), "run again") {
		t.Errorf("a table the lagging replica never creates: %v; want an error naming %s alone and what to do", err, lagging)
	}

	start := time.Now()
	if err := waitCreated(ctx, servers, db, time.Minute, time.Minute); err != nil || time.Since(start) > 10*time.Second {
		t.Errorf("a database every replica has: %v after %s", err, time.Since(start))
	}
}
