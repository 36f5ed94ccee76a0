package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/tracevault/tracevault/config"
	"github.com/tracevault/tracevault/snapshot/store"
)

// Claimer decides which of several daemons sharing a schedule runs a job: while one holds a
// job's claim no other starts that job, and a holder that dies loses its claim by itself (its
// ZooKeeper session or its lease expires), so another daemon takes over.
type Claimer interface {
	// Claim takes the job's claim; an error wrapping store.ErrLocked means another daemon holds it.
	Claim(ctx context.Context, job string) (store.Lock, error)
	Close()
}

// claimRoot is where daemons claim jobs in ZooKeeper, outside ClickHouse's own tree; each
// repository (deployment) has its own subtree, so two deployments sharing an ensemble never block
// each other's jobs of the same name.
const claimRoot = "/tracevault/jobs"

// claimTTL bounds how long a dead holder keeps a job through the repository's lease.
const claimTTL = 60 * time.Second

// NewClaimer claims through ZooKeeper when it is configured, since the ensemble is already there
// and its sessions notice a dead daemon within the session timeout; otherwise, and whenever
// ZooKeeper cannot be reached, through a lease in the repository: backups must not stop because
// the coordination service is sick.
func NewClaimer(cfg config.ZooKeeper, repo *store.Repository, log *slog.Logger) Claimer {
	lease := &leaseClaimer{b: repo.Backend()}
	if len(cfg.Servers) == 0 {
		return lease
	}
	return &zkClaimer{cfg: cfg, log: log, fallback: lease, root: path.Join(claimRoot, repo.ID())}
}

// leaseClaimer claims a job with the backend's lease (a blob lease on Azure, a lock file on disk).
type leaseClaimer struct{ b store.Backend }

func (l *leaseClaimer) Claim(ctx context.Context, job string) (store.Lock, error) {
	return l.b.Lock(ctx, "jobs/"+job, claimTTL)
}

func (l *leaseClaimer) Close() {}

// zkClaimer claims a job with an ephemeral node: it vanishes with the holder's session.
type zkClaimer struct {
	cfg      config.ZooKeeper
	log      *slog.Logger
	fallback Claimer
	root     string // claimRoot/<repository id>: one deployment's daemons

	mu   sync.Mutex
	conn *zk.Conn
}

func (z *zkClaimer) session(ctx context.Context) (*zk.Conn, error) {
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.conn != nil && z.conn.State() == zk.StateHasSession {
		return z.conn, nil
	}
	if z.conn != nil {
		z.conn.Close()
		z.conn = nil
	}
	conn, err := zkConnect(ctx, z.cfg, z.cfg.SessionTimeout.D(), z.log)
	if err != nil {
		return nil, err
	}
	z.conn = conn
	return conn, nil
}

func (z *zkClaimer) Claim(ctx context.Context, job string) (store.Lock, error) {
	conn, err := z.session(ctx)
	if err != nil {
		z.log.Warn("zookeeper unreachable; claiming the job through the repository lease instead", "job", job, "err", err)
		return z.fallback.Claim(ctx, job)
	}
	p := path.Join(z.root, job)
	if err := ensureParents(conn, p); err != nil {
		return nil, fmt.Errorf("claim job %s in zookeeper: %w", job, err)
	}
	host, _ := os.Hostname()
	holder, _ := json.Marshal(store.Holder{Host: host, PID: os.Getpid(), Since: time.Now().UTC(), What: "job " + job})
	_, err = conn.Create(p, holder, zk.FlagEphemeral, zk.WorldACL(zk.PermAll))
	if errors.Is(err, zk.ErrNodeExists) {
		var h store.Holder
		if data, _, gerr := conn.Get(p); gerr == nil {
			_ = json.Unmarshal(data, &h)
		}
		return nil, fmt.Errorf("job %s: %w by %s (pid %d) since %s", job, store.ErrLocked, h.Host, h.PID, h.Since.Format(time.RFC3339))
	}
	if err != nil {
		return nil, fmt.Errorf("claim job %s at %s: %w", job, p, err)
	}
	return watchEphemeral(conn, p, conn.SessionID(), z.cfg.SessionTimeout.D()/3), nil
}

func (z *zkClaimer) Close() {
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.conn != nil {
		z.conn.Close()
		z.conn = nil
	}
}

func ensureParents(conn *zk.Conn, p string) error {
	dir := path.Dir(p)
	if dir == "/" {
		return nil
	}
	if err := ensureParents(conn, dir); err != nil {
		return err
	}
	_, err := conn.Create(dir, nil, 0, zk.WorldACL(zk.PermAll))
	if err != nil && !errors.Is(err, zk.ErrNodeExists) {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	return nil
}

// zkClaim is a held ephemeral node. It is lost when the node is gone or belongs to another
// session: after a session expiry the client reconnects with a new session, and the old node
// (and with it the claim) is gone.
type zkClaim struct {
	conn    *zk.Conn
	path    string
	session int64
	lost    chan struct{}
	stop    chan struct{}
	once    sync.Once
}

func watchEphemeral(conn *zk.Conn, p string, session int64, every time.Duration) *zkClaim {
	if every <= 0 {
		every = time.Second
	}
	c := &zkClaim{conn: conn, path: p, session: session, lost: make(chan struct{}), stop: make(chan struct{})}
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-c.stop:
				return
			case <-t.C:
				if !c.held() {
					close(c.lost)
					return
				}
			}
		}
	}()
	return c
}

func (c *zkClaim) held() bool {
	_, st, err := c.conn.Get(c.path)
	return err == nil && st.EphemeralOwner == c.session && c.conn.SessionID() == c.session
}

func (c *zkClaim) Lost() <-chan struct{} { return c.lost }

func (c *zkClaim) Release(context.Context) error {
	var err error
	c.once.Do(func() {
		close(c.stop)
		if c.held() {
			err = c.conn.Delete(c.path, -1)
		}
	})
	return err
}
