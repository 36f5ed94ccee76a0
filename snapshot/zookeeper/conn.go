package zookeeper

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"
)

// Option tunes a session Connect opens.
type Option func(*connectOptions)

type connectOptions struct{ identity string }

// WithIdentity authenticates the session with the digest scheme, "user:password": the
// <zookeeper><identity> ClickHouse connects with. ClickHouse then creates its znodes readable
// only by that identity (the "auth" ACL, stored as digest:user:hash), on ZooKeeper and on
// ClickHouse Keeper alike; the official ClickHouse operator always sets one. Empty: no
// authentication. The client presents it again after every reconnect.
func WithIdentity(userPassword string) Option {
	return func(o *connectOptions) { o.identity = userPassword }
}

// Connect opens a session and waits until it is usable. go-zookeeper connects in the
// background and retries forever, so without this wait a dead ensemble would hang every call.
func Connect(ctx context.Context, servers []string, sessionTimeout time.Duration, log *slog.Logger, opts ...Option) (*zk.Conn, error) {
	if log == nil {
		log = slog.Default()
	}
	var o connectOptions
	for _, opt := range opts {
		opt(&o)
	}
	conn, events, err := zk.Connect(servers, sessionTimeout, zk.WithLogger(zkLogger{log}), zk.WithLogInfo(false))
	if err != nil {
		return nil, fmt.Errorf("connect to zookeeper %s: %w", strings.Join(servers, ","), err)
	}
	timer := time.NewTimer(sessionTimeout)
	defer timer.Stop()
	for {
		select {
		case ev := <-events:
			switch ev.State {
			case zk.StateHasSession:
				if err := authenticate(conn, o.identity); err != nil {
					conn.Close()
					return nil, fmt.Errorf("connect to zookeeper %s: %w", strings.Join(servers, ","), err)
				}
				return conn, nil
			case zk.StateAuthFailed:
				conn.Close()
				return nil, fmt.Errorf("connect to zookeeper %s: authentication failed", strings.Join(servers, ","))
			}
		case <-timer.C:
			conn.Close()
			// ClickHouse Keeper without a quorum answers the handshake with a rejection rather
			// than a session (ZooKeeper closes the connection): both end here.
			return nil, fmt.Errorf("connect to zookeeper %s: no session within %s; is the ensemble running with a quorum (a ClickHouse Keeper without a leader refuses sessions), and [zookeeper] servers right?", strings.Join(servers, ","), sessionTimeout)
		case <-ctx.Done():
			conn.Close()
			return nil, fmt.Errorf("connect to zookeeper %s: %w", strings.Join(servers, ","), ctx.Err())
		}
	}
}

func authenticate(conn *zk.Conn, identity string) error {
	if identity == "" {
		return nil
	}
	if err := conn.AddAuth("digest", []byte(identity)); err != nil {
		return fmt.Errorf("authenticate with [zookeeper] identity (digest): %w", err)
	}
	return nil
}

// zkLogger sends the client's reconnect chatter to slog at debug level.
type zkLogger struct{ log *slog.Logger }

func (l zkLogger) Printf(format string, args ...any) {
	l.log.Debug(fmt.Sprintf(format, args...), "component", "zookeeper-client")
}
