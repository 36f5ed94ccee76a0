// Package faultproxy is a TCP proxy that makes a server fail the ways a real one does (503s,
// resets, stalls, slow bodies). Used by the chaos suite (chaos/) and the fault tests of
// snapshot/blobs and snapshot/postgres/pitr; never by the binary.
package faultproxy

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Fault is what the proxy does to the traffic passing through it.
type Fault int

const (
	// Pass forwards every byte untouched.
	Pass Fault = iota
	// Reset ends each connection with a TCP RST once After bytes of it have been forwarded
	// (both directions counted): a network that drops mid-transfer.
	Reset
	// Stall holds each chunk of data for Stall before forwarding it: a storage account that
	// stops answering, long enough for clients' timeouts and retries to fire.
	Stall
	// Throttle forwards at most BytesPerSecond per connection and direction: slow bodies.
	Throttle
	// Unavailable answers every HTTP request with 503 Server Busy, as Azure Storage does when
	// it throttles an account, without reaching the server.
	Unavailable
	// Hold stops forwarding on every connection, open ones included, without closing any: a
	// network partition, or a frozen peer. What was held goes through once the mode changes.
	Hold
)

func (f Fault) String() string {
	switch f {
	case Pass:
		return "pass"
	case Reset:
		return "reset"
	case Stall:
		return "stall"
	case Throttle:
		return "throttle"
	case Unavailable:
		return "503"
	case Hold:
		return "hold"
	}
	return fmt.Sprintf("fault(%d)", int(f))
}

// Mode is the proxy's current fault and its parameters.
type Mode struct {
	Fault Fault
	After int64 // Reset: bytes forwarded on a connection before its RST
	// Resets is how many connections Reset resets, counted from Set; the others pass (0: every
	// one): a blip that one retry survives.
	Resets         int
	Stall          time.Duration // Stall: how long each chunk is held
	BytesPerSecond int           // Throttle: per connection and direction
	// IdleClose closes, with a FIN to both sides, a connection that carried nothing for this
	// long since the server last sent (or since it opened), whatever the fault: a server's
	// keep-alive timeout, shorter than its client expects (0: never). A request the server is
	// still working on is not idle.
	IdleClose time.Duration
}

// Stats count what the proxy did to connections since it started.
type Stats struct {
	Resets     int64 // reset by Reset after After bytes
	IdleClosed int64 // closed by IdleClose
}

// Proxy forwards TCP connections from its listener to Target, applying the current Mode to every
// connection, including those already open when the mode changes: a client's pooled keep-alive
// connection must not escape a fault.
type Proxy struct {
	Target string
	Log    *slog.Logger

	ln     net.Listener
	mu     sync.Mutex
	mode   Mode
	resets int // by Reset since the mode was set, for Mode.Resets
	stats  Stats
	conns  map[*pipe]struct{}
	wg     sync.WaitGroup
}

// Listen starts a proxy on addr ("127.0.0.1:0" for any free port) in front of target.
func Listen(addr, target string, log *slog.Logger) (*Proxy, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("chaos proxy: listen on %s: %w", addr, err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Proxy{Target: target, Log: log, ln: ln, conns: map[*pipe]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// ListenAzure starts a proxy in front of the blob endpoint of an Azure Storage connection string
// (Azurite's) and returns the connection string that goes through it.
func ListenAzure(conn string, log *slog.Logger) (*Proxy, string, error) {
	for _, part := range strings.Split(conn, ";") {
		v, ok := strings.CutPrefix(part, "BlobEndpoint=")
		if !ok {
			continue
		}
		u, err := url.Parse(v)
		if err != nil || u.Host == "" {
			return nil, "", fmt.Errorf("chaos proxy: BlobEndpoint %q of the connection string is not a URL", v)
		}
		p, err := Listen("127.0.0.1:0", u.Host, log)
		if err != nil {
			return nil, "", err
		}
		return p, strings.Replace(conn, "BlobEndpoint="+u.Scheme+"://"+u.Host, "BlobEndpoint="+u.Scheme+"://"+p.Addr(), 1), nil
	}
	return nil, "", fmt.Errorf("chaos proxy: the connection string has no BlobEndpoint")
}

// Addr is the proxy's listening address.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Set changes the mode. Switching to a fault resets every open connection, so that from now on
// every request meets it; switching back to Pass lets open connections go on, except those
// answering 503, which never reach the server: a client's pooled connection would otherwise
// go on meeting the 503 after the fault is over.
func (p *Proxy) Set(m Mode) {
	p.mu.Lock()
	p.mode, p.resets = m, 0
	open := p.open(m.Fault != Pass && m.Fault != Hold) // a partition leaves connections open
	if m.Fault != Unavailable {
		// The connections answered with 503 never reach the server: a client's keep-alive
		// connection would go on meeting the 503 after it ended.
		for c := range p.conns {
			if c.unavailable {
				open = append(open, c)
			}
		}
	}
	p.mu.Unlock()
	p.Log.Info("chaos proxy mode", "fault", m.Fault.String(), "after", m.After, "resets", m.Resets, "stall", m.Stall, "bytes_per_s", m.BytesPerSecond,
		"idle_close", m.IdleClose, "reset_open", len(open))
	for _, c := range open {
		c.reset()
	}
}

// open lists the open connections if want; p.mu is held.
func (p *Proxy) open(want bool) []*pipe {
	var out []*pipe
	if want {
		for c := range p.conns {
			out = append(out, c)
		}
	}
	return out
}

// Mode returns the current mode.
func (p *Proxy) Mode() Mode {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode
}

// Stats returns what the proxy did so far.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}

// takeReset says whether connection c, past Reset's After bytes, is reset: always, or while
// fewer than Mode.Resets were; a connection spared once is spared for good.
func (p *Proxy) takeReset(c *pipe, m Mode) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c.spared {
		return false
	}
	if m.Resets > 0 && p.resets >= m.Resets {
		c.spared = true
		return false
	}
	p.resets++
	p.stats.Resets++
	return true
}

// Close stops accepting and resets every open connection.
func (p *Proxy) Close() error {
	err := p.ln.Close()
	p.mu.Lock()
	open := p.open(true)
	p.mu.Unlock()
	for _, c := range open {
		c.reset()
	}
	p.wg.Wait()
	return err
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.serve(client)
		}()
	}
}

// pipe is one proxied connection.
type pipe struct {
	client, server net.Conn
	once           sync.Once
	mu             sync.Mutex
	n              int64     // bytes forwarded, both directions
	active         time.Time // when a byte was last forwarded, for Mode.IdleClose
	answered       bool      // the last bytes forwarded were the server's (or none were)
	closed         bool      // reset has run: a server dialled after it is closed at once
	unavailable    bool      // answered by serveUnavailable; set before serving, under Proxy.mu
	spared         bool      // Reset let it pass (Mode.Resets were done); under Proxy.mu
}

// reset closes both sides with SO_LINGER 0, which sends a RST instead of a FIN.
func (c *pipe) reset() { c.end(true) }

// end closes both sides, with a RST if rst, else with a FIN as a server closing an idle
// connection does.
func (c *pipe) end(rst bool) {
	c.once.Do(func() {
		c.mu.Lock()
		server := c.server
		c.closed = true
		c.mu.Unlock()
		for _, conn := range []net.Conn{c.client, server} {
			if tc, ok := conn.(*net.TCPConn); ok && rst {
				_ = tc.SetLinger(0)
			}
			if conn != nil {
				_ = conn.Close()
			}
		}
	})
}

// idle is how long the connection has carried nothing since the server last sent; 0 while the
// client sent last, the server working on its request.
func (c *pipe) idle() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.answered {
		return 0
	}
	return time.Since(c.active)
}

func (p *Proxy) serve(client net.Conn) {
	c := &pipe{client: client, active: time.Now(), answered: true}
	p.mu.Lock()
	p.conns[c] = struct{}{} // tracked from the start, so that a mode change resets it too
	unavailable := p.mode.Fault == Unavailable
	c.unavailable = unavailable
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.conns, c)
		p.mu.Unlock()
		c.reset()
	}()
	if unavailable {
		p.serveUnavailable(client)
		return
	}
	server, err := net.DialTimeout("tcp", p.Target, 10*time.Second)
	if err != nil {
		p.Log.Warn("chaos proxy: dial target", "target", p.Target, "err", err)
		return
	}
	c.mu.Lock()
	closed := c.closed
	c.server = server
	c.mu.Unlock()
	if closed { // reset by a mode change while dialling
		_ = server.Close()
		return
	}
	done := make(chan struct{}, 2)
	go func() { p.copy(c, server, client); done <- struct{}{} }()
	go func() { p.copy(c, client, server); done <- struct{}{} }()
	p.closeIdle(c, done) // either side ending ends the connection: HTTP clients reconnect
}

// closeIdle waits for either side of c to end, closing c when it carried nothing for the mode's
// IdleClose.
func (p *Proxy) closeIdle(c *pipe, done <-chan struct{}) {
	for {
		wait := 100 * time.Millisecond // how soon a mode set later is seen
		if d := p.Mode().IdleClose; d > 0 {
			idle := c.idle()
			if idle >= d {
				p.mu.Lock()
				p.stats.IdleClosed++
				p.mu.Unlock()
				c.end(false)
				<-done
				return
			}
			wait = min(wait, d-idle)
		}
		select {
		case <-done:
			return
		case <-time.After(wait):
		}
	}
}

// copy forwards src to dst chunk by chunk, applying the mode in force at each chunk.
func (p *Proxy) copy(c *pipe, dst, src net.Conn) {
	buf := make([]byte, 16<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !p.forward(c, dst, buf[:n]) {
			return
		}
		if err != nil {
			return
		}
	}
}

// forward writes one chunk as the current mode says; false ends the connection.
func (p *Proxy) forward(c *pipe, dst net.Conn, b []byte) bool {
	m := p.Mode()
	c.mu.Lock()
	c.active, c.answered = time.Now(), dst == c.client
	c.mu.Unlock()
	switch m.Fault {
	case Unavailable:
		c.reset() // accepted just before the switch: its client reconnects and meets the 503
		return false
	case Reset:
		c.mu.Lock()
		before := c.n
		c.n += int64(len(b))
		c.mu.Unlock()
		if before+int64(len(b)) > m.After && p.takeReset(c, m) {
			if before < m.After {
				_, _ = dst.Write(b[:m.After-before])
			}
			c.reset()
			return false
		}
	case Stall:
		time.Sleep(m.Stall)
	case Hold:
		for p.Mode().Fault == Hold {
			c.mu.Lock()
			closed := c.closed
			c.mu.Unlock()
			if closed {
				return false
			}
			time.Sleep(20 * time.Millisecond)
		}
	case Throttle:
		rate := max(m.BytesPerSecond, 10)
		for len(b) > 0 {
			chunk := b[:min(len(b), rate/10)]
			if _, err := dst.Write(chunk); err != nil {
				return false
			}
			b = b[len(chunk):]
			time.Sleep(time.Duration(len(chunk)) * time.Second / time.Duration(rate))
		}
		return true
	}
	_, err := dst.Write(b)
	return err == nil
}

// serveUnavailable answers each request on the connection with 503 until the client gives up
// or the fault ends, reading its body first so that the client sees the answer rather than a
// broken pipe.
func (p *Proxy) serveUnavailable(conn net.Conn) {
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(conn)
	const body = `<?xml version="1.0" encoding="utf-8"?><Error><Code>ServerBusy</Code><Message>The server is busy (chaos proxy).</Message></Error>`
	for {
		req, err := http.ReadRequest(r)
		if err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, req.Body)
		_ = req.Body.Close()
		if p.Mode().Fault != Unavailable {
			return // the fault is over: the client sends the request again on a new connection
		}
		// The answer to a HEAD has no body: one sent would be read as the next answer's start.
		resp := fmt.Sprintf("HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/xml\r\nx-ms-error-code: ServerBusy\r\nContent-Length: %d\r\n\r\n", len(body))
		if req.Method != http.MethodHead {
			resp += body
		}
		if _, err := io.WriteString(conn, resp); err != nil {
			return
		}
	}
}
