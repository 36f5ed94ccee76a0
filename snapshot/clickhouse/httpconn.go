package clickhouse

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// idleConnTimeout closes a pooled connection before the server does. ClickHouse closes an idle
// keep-alive connection after keep_alive_timeout (3 s in the config 18.16 ships, 30 s on 26.x);
// a request written into a connection the server has just closed breaks off ("write: broken
// pipe") with no answer, and a streamed INSERT cannot be sent again by the transport itself.
// Staying below the smallest default makes that rare; Retry covers the race that is left.
const idleConnTimeout = 2 * time.Second

// Transport is the HTTP transport of every HTTP whose Client is nil. A Client of one's own
// should send through it (as migrate's does), for its idle timeout and for the server's answer
// on a connection that broke while a request body was being sent.
var Transport http.RoundTripper = newTransport()

var defaultClient = &http.Client{Transport: Transport}

func newTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.IdleConnTimeout = idleConnTimeout
	// No "Accept-Encoding: gzip": 26.x compresses its answer to a client that accepts it
	// (enable_http_compression is on by default), and gzip cost the server 2.6x the CPU of a
	// plain export of an events_full partition, and tracevault 44% of its CPU to undo, for a
	// connection inside one cluster whose bytes cost nothing.
	t.DisableCompression = true
	dial := t.DialContext
	t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &replyConn{Conn: c}, nil
	}
	return t
}

// maxReply is how much of a server's answer replyConn keeps: its status, headers and the start
// of an exception's text.
const maxReply = 8 << 10

// replyDrain bounds how long closing a connection whose write failed waits for the rest of an
// answer already on its way.
const replyDrain = 100 * time.Millisecond

// replyConn keeps the first bytes the server sent in answer to the request on the connection.
// A server may answer before it has read the whole body (an exception, then closing the
// connection); the client's next write then fails, and Go's transport reports that failure,
// "broken pipe" or "connection reset", and drops the answer even when it had arrived (it takes
// any error of the body's copy for an error of the body itself, which outranks a response).
// HTTP.do reads the server's words from here instead.
type replyConn struct {
	net.Conn
	mu       sync.Mutex
	reply    []byte
	writeErr error
	readErr  error // the first failure of a read: why the transport closed the connection
}

// begin starts a request: what the server answered to the one before is forgotten.
func (c *replyConn) begin() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reply, c.writeErr, c.readErr = c.reply[:0], nil, nil
}

func (c *replyConn) keep(b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if room := maxReply - len(c.reply); room > 0 && len(b) > 0 {
		c.reply = append(c.reply, b[:min(len(b), room)]...)
	}
}

func (c *replyConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.keep(p[:n])
	if err != nil {
		c.mu.Lock()
		if c.readErr == nil {
			c.readErr = err
		}
		c.mu.Unlock()
	}
	return n, err
}

// broke is why the connection failed, when the transport reports only that it was closed: its
// reading side saw the reset (or the end) first and closed it under the writing side.
func (c *replyConn) broke(err error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.readErr == nil || !errors.Is(err, net.ErrClosed) {
		return err
	}
	if errors.Is(c.readErr, io.EOF) {
		return fmt.Errorf("%w (the server closed the connection)", err)
	}
	return fmt.Errorf("%w (%v)", err, c.readErr)
}

func (c *replyConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if err != nil {
		c.mu.Lock()
		c.writeErr = err
		c.mu.Unlock()
	}
	return n, err
}

// Close first reads what is left of an answer when a write failed: the transport closes the
// connection without reading the answer that came before the server's reset.
func (c *replyConn) Close() error {
	c.mu.Lock()
	failed := c.writeErr != nil
	c.mu.Unlock()
	if failed {
		_ = c.Conn.SetReadDeadline(time.Now().Add(replyDrain))
		buf := make([]byte, 4<<10)
		for {
			n, err := c.Conn.Read(buf)
			c.keep(buf[:n])
			if err != nil {
				break
			}
		}
	}
	return c.Conn.Close()
}

// answer is the response the server sent on the connection since the request began, if it sent
// a whole status line and header; its body holds what arrived of the text.
func (c *replyConn) answer() *http.Response {
	c.mu.Lock()
	reply := bytes.Clone(c.reply)
	c.mu.Unlock()
	if len(reply) == 0 {
		return nil
	}
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(reply)), nil)
	if err != nil {
		return nil
	}
	return resp
}
