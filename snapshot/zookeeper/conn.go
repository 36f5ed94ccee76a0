package zookeeper

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"
)

// Connect opens a session and waits until it is usable. go-zookeeper connects in the
// background and retries forever, so without this wait a dead ensemble would hang every call.
func Connect(ctx context.Context, servers []string, sessionTimeout time.Duration, log *slog.Logger) (*zk.Conn, error) {
	if log == nil {
		log = slog.Default()
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
				return conn, nil
			case zk.StateAuthFailed:
				conn.Close()
				return nil, fmt.Errorf("connect to zookeeper %s: authentication failed", strings.Join(servers, ","))
			}
		case <-timer.C:
			conn.Close()
			return nil, fmt.Errorf("connect to zookeeper %s: no session within %s; is the ensemble running and [zookeeper] servers right?", strings.Join(servers, ","), sessionTimeout)
		case <-ctx.Done():
			conn.Close()
			return nil, fmt.Errorf("connect to zookeeper %s: %w", strings.Join(servers, ","), ctx.Err())
		}
	}
}

// zkLogger sends the client's reconnect chatter to slog at debug level.
type zkLogger struct{ log *slog.Logger }

func (l zkLogger) Printf(format string, args ...any) {
	l.log.Debug(fmt.Sprintf(format, args...), "component", "zookeeper-client")
}
