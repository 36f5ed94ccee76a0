// ZooKeeper registrations of replicated tables: where a replica registers, and removing a
// registration or a whole table group. Both restore and replica rebuilds use them.

package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-zookeeper/zk"
)

// registrationPath is where the target registers under a table's group.
func registrationPath(t *Table, macros map[string]string) string {
	return t.ZooKeeperPath + "/replicas/" + expandMacros(replicaArg(t.Create), macros, t)
}

// dropRegistration removes a lost table's registration. It refuses one whose is_active node
// lives: a server with this replica name is running, and removing it would break that server.
func dropRegistration(ctx context.Context, conn *zk.Conn, path string) error {
	if conn == nil {
		return fmt.Errorf("removing the stale registration %s needs [zookeeper] servers", path)
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		active, _, err := conn.Exists(path + "/is_active")
		if err != nil {
			return fmt.Errorf("check %s/is_active: %w", path, err)
		}
		if !active {
			break
		}
		// A replica that was killed keeps is_active until its ZooKeeper session times out.
		if time.Now().After(deadline) {
			return fmt.Errorf("%s is still active: a running server uses this replica name; check the <macros> of every server before rebuilding", path)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
	return deleteTree(ctx, conn, path)
}

// deleteTree removes a znode and everything under it, depth first.
func deleteTree(ctx context.Context, conn *zk.Conn, path string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	children, _, err := conn.Children(path)
	if errors.Is(err, zk.ErrNoNode) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("list %s: %w", path, err)
	}
	for _, c := range children {
		if err := deleteTree(ctx, conn, path+"/"+c); err != nil {
			return err
		}
	}
	if err := conn.Delete(path, -1); err != nil && !errors.Is(err, zk.ErrNoNode) {
		return fmt.Errorf("delete %s: %w", path, err)
	}
	return nil
}

// dropGroup removes a replication group none of whose replicas is active any more.
func dropGroup(ctx context.Context, conn *zk.Conn, path string) error {
	if conn == nil {
		return fmt.Errorf("removing the lost group %s needs [zookeeper] servers", path)
	}
	names, _, err := conn.Children(path + "/replicas")
	if err != nil && !errors.Is(err, zk.ErrNoNode) {
		return fmt.Errorf("list %s/replicas: %w", path, err)
	}
	for _, n := range names {
		if active, _, err := conn.Exists(path + "/replicas/" + n + "/is_active"); err != nil || active {
			return fmt.Errorf("will not remove %s: replica %s is active in it (%v); restore-replica rebuilds a lost replica next to live ones", path, n, err)
		}
	}
	return deleteTree(ctx, conn, path)
}
