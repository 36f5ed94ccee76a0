package clickhouse_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tracevault/tracevault/demo"
	"github.com/tracevault/tracevault/internal/devstack"
	"github.com/tracevault/tracevault/snapshot/clickhouse"
	"github.com/tracevault/tracevault/snapshot/zookeeper"
)

// TestGroupMap checks the replica-group map of a demo database: every replicated table has one
// path with the three replicas registered and active; with replica 3 stopped, it shows inactive.
func TestGroupMap(t *testing.T) {
	devstack.Disruptive(t)
	env := devstack.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	db := devstack.ScratchName("it_groups")
	if _, err := demo.Seed(ctx, demo.Options{ClickHouse: env.CHNative, ClickHouseHTTP: env.CHHTTP, Cluster: env.CHCluster, Database: db, Traces: 200, Seed: 3}); err != nil {
		t.Fatal(err)
	}
	servers := dialAll(t, env)
	// A cleanup, not a defer: it must run after the cleanup below restarts ch3, or the DROP ON
	// CLUSTER waits out the distributed DDL timeout for the stopped replica.
	t.Cleanup(func() {
		_ = servers[0].Conn.Exec(context.Background(), fmt.Sprintf("DROP DATABASE IF EXISTS %s ON CLUSTER %s", db, env.CHCluster))
	})
	zk, err := zookeeper.Connect(ctx, []string{env.ZK}, 10*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer zk.Close()

	view := clickhouse.Observe(ctx, servers, env.CHNative, zk)
	groups := groupsOf(view, db)
	if len(groups) != len(demo.ReplicatedTables) {
		t.Fatalf("%d groups for %s, want %d: %+v", len(groups), db, len(demo.ReplicatedTables), groups)
	}
	for _, g := range groups {
		if len(g.Members) != 3 || len(g.Registered) != 3 {
			t.Errorf("%s: %d members, %d registered; want 3 and 3", g.ZooKeeperPath, len(g.Members), len(g.Registered))
		}
		for _, r := range g.Registered {
			if !r.Active || r.Host != "127.0.0.1" || r.TCPPort == 0 || r.Columns == "" {
				t.Errorf("%s: registration %+v; want active with host, tcp_port and columns", g.ZooKeeperPath, r)
			}
		}
	}
	if view.Replicas[2].Name() != "ch3" {
		t.Errorf("replica 3 named %q from its macros, want ch3", view.Replicas[2].Name())
	}

	if err := env.Stop(ctx, "ch3"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := env.Start(context.Background(), "ch3"); err != nil {
			t.Errorf("restart ch3: %v", err)
		}
	})
	// ch3's ZooKeeper session must expire before is_active disappears.
	deadline := time.Now().Add(60 * time.Second)
	for {
		view = clickhouse.Observe(ctx, servers[:2], env.CHNative, zk)
		inactive := 0
		for _, g := range groupsOf(view, db) {
			for _, r := range g.Registered {
				if r.Name == "ch3" && !r.Active {
					inactive++
				}
			}
		}
		if inactive == len(demo.ReplicatedTables) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ch3 still active in %d of %d groups a minute after it stopped", len(demo.ReplicatedTables)-inactive, len(demo.ReplicatedTables))
		}
		time.Sleep(time.Second)
	}
	if view.Replicas[2].Up || view.Replicas[2].Error == "" {
		t.Errorf("replica 3 should be reported down: %+v", view.Replicas[2])
	}
}

func dialAll(t *testing.T, env *devstack.Env) []*clickhouse.Server {
	t.Helper()
	var out []*clickhouse.Server
	for _, addr := range env.CHNative {
		s, err := clickhouse.Dial(context.Background(), addr, clickhouse.ConnOptions{User: "default"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		out = append(out, s)
	}
	return out
}

func groupsOf(v *clickhouse.View, db string) []clickhouse.Group {
	var out []clickhouse.Group
	for _, g := range v.Groups {
		if len(g.Members) > 0 && len(g.Members[0].Table) > len(db) && g.Members[0].Table[:len(db)+1] == db+"." {
			out = append(out, g)
		}
	}
	return out
}
