package zookeeper

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
)

// TestRecordAndRestoreNodesOfAnIdentity: ClickHouse connected with <zookeeper><identity> (the
// official ClickHouse operator always sets one) creates its nodes with the "auth" ACL, readable
// by that identity alone; ZooKeeper and ClickHouse Keeper store it as digest:user:hash alike. A
// session without the identity cannot record them and is told which key fixes it; one with
// [zookeeper] identity records them, and a restore re-creates them with the same ACL.
func TestRecordAndRestoreNodesOfAnIdentity(t *testing.T) {
	anon, servers := connectStack(t)
	root := scratchRoot(t, anon)
	const identity = "clickhouse:keeper-identity-secret"
	ctx := context.Background()
	authed, err := Connect(ctx, servers, 10*time.Second, nil, WithIdentity(identity))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteTree(authed, root); authed.Close() })
	tables := root + "/tables"
	for _, p := range []string{tables, tables + "/uuid-1", tables + "/uuid-1/0", tables + "/uuid-1/0/replicas"} {
		if _, err := authed.Create(p, []byte("by "+identity[:10]), 0, zk.AuthACL(zk.PermAll)); err != nil {
			t.Fatalf("create %s as the identity: %v", p, err)
		}
	}

	var buf bytes.Buffer
	_, err = Record(ctx, anon, RecordOptions{Roots: []string{root}}, &buf)
	if !errors.Is(err, zk.ErrNoAuth) || !strings.Contains(err.Error(), "[zookeeper] identity") {
		t.Fatalf("record without the identity: %v; want ErrNoAuth naming [zookeeper] identity", err)
	}

	nodes, _ := record(t, authed, RecordOptions{Roots: []string{root}})
	if len(nodes) != 5 {
		t.Fatalf("recorded %d nodes, want the root and 4 under it", len(nodes))
	}
	want := zk.DigestACL(zk.PermAll, "clickhouse", "keeper-identity-secret")[0]
	for _, n := range nodes[1:] {
		if len(n.ACL) != 1 || n.ACL[0].Scheme != "digest" || n.ACL[0].ID != want.ID || n.ACL[0].Perms != zk.PermAll {
			t.Fatalf("%s recorded with ACL %+v, want %+v", n.Path, n.ACL, want)
		}
	}

	deleteTree(authed, tables)
	_, err = Restore(ctx, anon, &sliceSource{nodes: nodes}, RestoreOptions{Root: tables})
	if !errors.Is(err, zk.ErrNoAuth) || !strings.Contains(err.Error(), "[zookeeper] identity") {
		t.Fatalf("restore under a node of the identity without it: %v; want ErrNoAuth naming [zookeeper] identity", err)
	}
	deleteTree(authed, tables)
	rep, err := Restore(ctx, authed, &sliceSource{nodes: nodes}, RestoreOptions{Root: tables})
	if err != nil || rep.Created != 4 {
		t.Fatalf("restore as the identity: %+v, %v; want 4 created", rep, err)
	}
	if _, _, err := anon.Get(tables + "/uuid-1/0"); !errors.Is(err, zk.ErrNoAuth) {
		t.Errorf("restored node read without the identity: %v; its ACL must still admit the identity only", err)
	}
	acl, _, err := authed.GetACL(tables + "/uuid-1/0/replicas")
	if err != nil || len(acl) != 1 || acl[0] != want {
		t.Errorf("restored ACL %+v (%v), want %+v", acl, err, want)
	}
}
