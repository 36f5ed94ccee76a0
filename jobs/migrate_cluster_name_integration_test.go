package jobs

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/tracevault/tracevault/config"
	"github.com/tracevault/tracevault/internal/devstack"
	"github.com/tracevault/tracevault/snapshot/store"
)

// langfuseCluster is the second cluster name stack.sh gives the three 18.16 replicas, as a
// Langfuse operator names theirs (CLICKHOUSE_CLUSTER_NAME).
const langfuseCluster = "langfuse"

// requireCluster skips (fails under CI, whose stacks are new) when the running stack's
// replicas lack the named cluster: a stack brought up before stack.sh defined it.
func requireCluster(t *testing.T, env *devstack.Env, name string) {
	t.Helper()
	for i := range env.CHHTTP {
		if err := env.CHExec(i, fmt.Sprintf("SELECT throwIf(count() = 0) FROM system.clusters WHERE cluster = '%s'", name)); err != nil {
			msg := fmt.Sprintf("replica %d has no cluster %q in remote_servers: this stack predates it; `make stack-down && make stack-up` brings a stack that has it (%v)", i+1, name, err)
			if os.Getenv("CI") == "true" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}
}

// modernToCluster is a migration of db from ch-modern to the 18.16 replicas, ON CLUSTER
// cluster: the source's configuration, its repository and the request.
func modernToCluster(t *testing.T, env *devstack.Env, db, cluster string) (*config.Config, *store.Repository, MigrateClusterRequest) {
	t.Helper()
	cfg := daemonConfig(t, env, t.TempDir())
	cfg.ZooKeeper.Servers = nil
	cfg.ClickHouse.Addresses, cfg.ClickHouse.HTTPAddresses = []string{env.CHModernNative}, []string{env.CHModernHTTP}
	cfg.ClickHouse.Databases = []string{db}
	repo, err := CreateRepository(context.Background(), cfg.Storage, quiet)
	if err != nil {
		t.Fatal(err)
	}
	quote := func(xs []string) string { return `["` + strings.Join(xs, `", "`) + `"]` }
	return cfg, repo, MigrateClusterRequest{Target: writeTarget(t, fmt.Sprintf("[clickhouse]\naddresses = %s\nhttp_addresses = %s\ncluster = %q\n[zookeeper]\nservers = [%q]\n",
		quote(env.CHNative), quote(env.CHHTTP), cluster, env.ZK))}
}

// TestMigrateClusterNamedCluster: ch-modern (one server, no macros, no ZooKeeper) to the 18.16
// replicas through a cluster named other than `default`: the tables are created ON CLUSTER
// langfuse, and each replica registers them under the target's own macros (shard 01, replica
// 1, 2, 3: a layout the source has none of), so that the three are one replication group with
// three distinct replica names and every replica holds every row.
func TestMigrateClusterNamedCluster(t *testing.T) {
	env := devstack.RequireModern(t)
	requireCluster(t, env, langfuseCluster)
	db := env.CHDatabase(t, "it_mcn")
	if _, err := env.ModernQuery("CREATE DATABASE " + db + " ENGINE = Atomic"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = env.ModernQuery("DROP DATABASE IF EXISTS " + db + " SYNC") })
	for _, q := range []string{
		fmt.Sprintf("CREATE TABLE %s.traces "+mcTraces, db, "ReplacingMergeTree(event_ts)"),
		fmt.Sprintf(mcRows, db, 4, 120),
		fmt.Sprintf(mcRows, db, 5, 80),
	} {
		if _, err := env.ModernQuery(q); err != nil {
			t.Fatal(err)
		}
	}
	cfg, repo, req := modernToCluster(t, env, db, langfuseCluster)
	req.Cutover, req.AllowNonEmpty = true, true // CHDatabase made the database; it holds no table
	plan, rep := migrateOnce(t, cfg, repo, req)
	if got := plan.Tables[len(plan.Tables)-1]; !strings.Contains(got.Create, "ON CLUSTER `"+langfuseCluster+"`") || plan.Target.Cluster != langfuseCluster {
		t.Errorf("traces on cluster %s: %+v", langfuseCluster, got)
	}
	if rep.Proof == nil || !rep.Proof.Rows || rep.Proof.Replicas != 3 || rep.BehindRows != 200 {
		t.Errorf("cutover: %+v proof %+v", rep, rep.Proof)
	}
	for i := range env.CHHTTP {
		// Each replica names itself by its own {replica} macro, under the shared {shard} path.
		q := fmt.Sprintf(`SELECT throwIf(count() != 1) FROM system.replicas WHERE database = '%s' AND table = 'traces'
			AND replica_name = (SELECT substitution FROM system.macros WHERE macro = 'replica')
			AND zookeeper_path = concat('/clickhouse/tables/', (SELECT substitution FROM system.macros WHERE macro = 'shard'), '/%s/traces')
			AND total_replicas = 3`, db, db)
		if err := env.CHExec(i, q); err != nil {
			t.Errorf("replica %d: not registered under its macros: %v", i+1, err)
		}
		if err := env.CHExec(i, "SELECT throwIf(count() != 200) FROM "+db+".traces"); err != nil {
			t.Errorf("replica %d: %v", i+1, err)
		}
	}
}
