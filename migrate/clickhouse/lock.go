package clickhouse

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/tracevault/tracevault/migrate"
	"github.com/tracevault/tracevault/snapshot/zookeeper"
)

// LockRoot is where migration locks live in ZooKeeper, one ephemeral node per database: it
// vanishes with the session of a migrator that dies, so a crash never leaves the lock behind.
const LockRoot = "/tracevault/migrate/clickhouse"

func (d *Driver) lockPath() string { return path.Join(LockRoot, d.o.Database, "lock") }

// holder is what the lock node holds, so a waiting migrator can say who it waits for.
type holder struct {
	Host  string    `json:"host"`
	PID   int       `json:"pid"`
	Since time.Time `json:"since"`
}

func (h holder) String() string {
	return fmt.Sprintf("pid %d on %s since %s", h.PID, h.Host, h.Since.UTC().Format(time.RFC3339))
}

// Lock creates the ephemeral lock node, waiting at most wait for a holder to release it, then
// creates the database and tables where missing.
func (d *Driver) Lock(ctx context.Context, wait time.Duration) error {
	if len(d.o.ZooKeeper) == 0 {
		d.o.Log.Warn("no [zookeeper] servers: the ClickHouse migration lock cannot exclude migrators on other hosts", "database", d.o.Database)
		return d.ensure(ctx)
	}
	if d.zk == nil {
		conn, err := zookeeper.Connect(ctx, d.o.ZooKeeper, d.o.SessionTimeout, d.o.Log)
		if err != nil {
			return err
		}
		d.zk = conn
	}
	if err := d.acquire(ctx, wait); err != nil {
		return err
	}
	if err := d.ensure(ctx); err != nil {
		return errors.Join(err, d.Unlock(ctx))
	}
	return nil
}

func (d *Driver) acquire(ctx context.Context, wait time.Duration) error {
	host, _ := os.Hostname()
	me, _ := json.Marshal(holder{Host: host, PID: os.Getpid(), Since: time.Now()})
	p := d.lockPath()
	start := time.Now()
	reported := false
	for {
		_, err := d.zk.Create(p, me, zk.FlagEphemeral, zk.WorldACL(zk.PermAll))
		switch {
		case err == nil:
			d.holding = me
			return nil
		case errors.Is(err, zk.ErrNoNode):
			if err := d.createParents(p); err != nil {
				return err
			}
			continue
		case !errors.Is(err, zk.ErrNodeExists):
			return fmt.Errorf("create lock node %s: %w", p, err)
		}
		data, _, gone, err := d.zk.GetW(p)
		if errors.Is(err, zk.ErrNoNode) {
			continue
		}
		if err != nil {
			return fmt.Errorf("read lock node %s: %w", p, err)
		}
		var h holder
		who := "an unknown migrator (lock node " + p + ")"
		if json.Unmarshal(data, &h) == nil && h.PID != 0 {
			who = h.String()
		}
		left := wait - time.Since(start)
		if left <= 0 {
			return &migrate.LockedError{Holder: who, Waited: time.Since(start)}
		}
		if !reported {
			d.o.Log.Info("waiting for the migration lock", "database", d.o.Database, "holder", who, "max_wait", wait)
			reported = true
		}
		timer := time.NewTimer(left)
		select {
		case <-gone:
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		}
		timer.Stop()
	}
}

func (d *Driver) createParents(p string) error {
	dir := ""
	for _, part := range strings.Split(strings.Trim(path.Dir(p), "/"), "/") {
		dir += "/" + part
		if _, err := d.zk.Create(dir, nil, 0, zk.WorldACL(zk.PermAll)); err != nil && !errors.Is(err, zk.ErrNodeExists) {
			return fmt.Errorf("create zookeeper node %s for the migration lock: %w", dir, err)
		}
	}
	return nil
}

// Unlock deletes the lock node.
func (d *Driver) Unlock(ctx context.Context) error {
	if d.zk == nil {
		return nil
	}
	// Delete only our own node: if our session expired, the node may now be another's.
	data, stat, err := d.zk.Get(d.lockPath())
	if errors.Is(err, zk.ErrNoNode) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read lock node %s: %w", d.lockPath(), err)
	}
	if string(data) != string(d.holding) {
		return fmt.Errorf("lock node %s is no longer ours (held by %s): the ZooKeeper session expired during the run", d.lockPath(), data)
	}
	if err := d.zk.Delete(d.lockPath(), stat.Version); err != nil && !errors.Is(err, zk.ErrNoNode) {
		return fmt.Errorf("delete lock node %s: %w", d.lockPath(), err)
	}
	return nil
}
