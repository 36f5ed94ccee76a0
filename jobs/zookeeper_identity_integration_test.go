package jobs

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/tracevault/tracevault/config"
	"github.com/tracevault/tracevault/internal/devstack"
	"github.com/tracevault/tracevault/snapshot/zookeeper"
)

// TestZooKeeperReadsAsTheIdentity: every session jobs opens presents [zookeeper] identity, so the
// nodes ClickHouse created under its <zookeeper><identity> (the "auth" ACL the official
// operator's ClickHouseCluster gives them, on Keeper as on ZooKeeper) read through `zk dump`, the
// replica checks and the record alike.
func TestZooKeeperReadsAsTheIdentity(t *testing.T) {
	env := devstack.Require(t)
	ctx := context.Background()
	const identity = "clickhouse:operator-keeper-identity"
	owner, err := zookeeper.Connect(ctx, []string{env.ZK}, 10*time.Second, quiet, zookeeper.WithIdentity(identity))
	if err != nil {
		t.Fatal(err)
	}
	defer owner.Close()
	root := "/tracevault-test/" + devstack.ScratchName("identity")
	_, _ = owner.Create("/tracevault-test", nil, 0, zk.WorldACL(zk.PermAll))
	for _, p := range []string{root, root + "/tables", root + "/tables/uuid-1"} {
		if _, err := owner.Create(p, []byte("x"), 0, zk.AuthACL(zk.PermAll)); err != nil {
			t.Fatal(err)
		}
	}
	defer func() {
		for _, p := range []string{root + "/tables/uuid-1", root + "/tables", root} {
			_ = owner.Delete(p, -1)
		}
	}()

	cfg := config.Defaults()
	cfg.ZooKeeper.Servers = []string{env.ZK}
	var nodes []string
	dump := func() error {
		nodes = nil
		for n, err := range ZKNodes(ctx, &cfg, ZKDumpRequest{Roots: []string{root}}, quiet) {
			if err != nil {
				return err
			}
			nodes = append(nodes, n.Path)
		}
		return nil
	}
	if err := dump(); !errors.Is(err, zk.ErrNoAuth) || !strings.Contains(err.Error(), "identity") {
		t.Fatalf("zk dump without [zookeeper] identity: %v; want ErrNoAuth naming the key", err)
	}
	cfg.ZooKeeper.Identity = identity
	if err := dump(); err != nil || len(nodes) != 3 {
		t.Fatalf("zk dump as the identity: %v, %v; want the 3 nodes", nodes, err)
	}
}
