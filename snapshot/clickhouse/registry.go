// ZooKeeper registrations of replicated tables: where a replica registers, and removing a
// registration or a whole table group. Both restore and replica rebuilds use them.

package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/go-zookeeper/zk"
)

// RegistrationPath is where the target registers under a table's group.
func RegistrationPath(t *Table, macros map[string]string) string {
	return t.ZooKeeperPath + "/replicas/" + ExpandMacros(ReplicaArg(t.Create), macros, t)
}

// DropRegistration removes a lost table's registration. It refuses one whose is_active node
// lives: a server with this replica name is running, and removing it would break that server.
func DropRegistration(ctx context.Context, conn *zk.Conn, path string) error {
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

// DropGroup removes a replication group none of whose replicas is active any more.
func DropGroup(ctx context.Context, conn *zk.Conn, path string) error {
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

// ReplicaArg is the replica-name argument of a replicated engine; servers that allow omitting
// it use '{replica}'.
func ReplicaArg(create string) string {
	if m := replicatedArgs.FindStringSubmatch(create); m != nil {
		return m[3]
	}
	return "{replica}"
}

// ExpandMacros substitutes a server's macros, and {database}, {table} and {uuid}, the way the
// server does in a replicated engine's arguments.
func ExpandMacros(s string, macros map[string]string, t *Table) string {
	return regexp.MustCompile(`\{(\w+)\}`).ReplaceAllStringFunc(s, func(m string) string {
		key := m[1 : len(m)-1]
		switch key {
		case "database":
			return t.Database
		case "table":
			return t.Name
		case "uuid":
			return t.UUID
		}
		if v, ok := macros[key]; ok {
			return v
		}
		return m
	})
}
