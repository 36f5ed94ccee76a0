package faultproxy

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestProxyModes runs each mode against a real HTTP server and checks what a client sees: the
// body intact through pass and throttle, a 503 without reaching the server, a reset mid-body,
// and a stall that outlasts the client's timeout.
func TestProxyModes(t *testing.T) {
	body := bytes.Repeat([]byte("tracevault"), 20_000) // 200 kB
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = w.Write(body)
	}))
	defer srv.Close()
	p, err := Listen("127.0.0.1:0", strings.TrimPrefix(srv.URL, "http://"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	for _, tc := range []struct {
		mode    Mode
		timeout time.Duration
		status  int    // 0: the request must fail
		errHas  string // part of the failure
		reaches bool   // the request reaches the server
	}{
		{Mode{Fault: Pass}, time.Minute, 200, "", true},
		{Mode{Fault: Unavailable}, time.Minute, 503, "", false},
		{Mode{Fault: Reset, After: 4096}, time.Minute, 0, "", true},
		{Mode{Fault: Throttle, BytesPerSecond: 2 << 20}, time.Minute, 200, "", true},
		{Mode{Fault: Stall, Stall: 3 * time.Second}, 500 * time.Millisecond, 0, "Timeout", false},
		{Mode{Fault: Pass}, time.Minute, 200, "", true}, // recovery
	} {
		t.Run(tc.mode.Fault.String(), func(t *testing.T) {
			p.Set(tc.mode)
			before := hits.Load()
			client := &http.Client{Timeout: tc.timeout}
			resp, err := client.Post("http://"+p.Addr()+"/blob", "text/plain", strings.NewReader("hello"))
			var got []byte
			if err == nil {
				got, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			switch {
			case tc.status == 0 && err == nil:
				t.Fatalf("want a failed request, got %d with %d bytes", resp.StatusCode, len(got))
			case tc.status == 0 && !strings.Contains(err.Error(), tc.errHas):
				t.Fatalf("want an error with %q, got %v", tc.errHas, err)
			case tc.status != 0 && err != nil:
				t.Fatalf("want %d, got %v", tc.status, err)
			case tc.status != 0 && resp.StatusCode != tc.status:
				t.Fatalf("want %d, got %d", tc.status, resp.StatusCode)
			case tc.status == 200 && !bytes.Equal(got, body):
				t.Fatalf("body of %d bytes differs from the server's %d", len(got), len(body))
			}
			if reached := hits.Load() > before; reached != tc.reaches && tc.mode.Fault != Stall {
				t.Errorf("request reached the server: %v, want %v", reached, tc.reaches)
			}
		})
	}
}

// TestProxyHold: hold forwards nothing on an open connection without closing it, and what it
// held goes through once the mode is pass again.
func TestProxyHold(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() { // echo
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(c, c); c.Close() }()
		}
	}()
	p, err := Listen("127.0.0.1:0", ln.Addr().String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 5)
	echo := func(msg string, within time.Duration) error {
		if _, err := c.Write([]byte(msg)); err != nil {
			return err
		}
		_ = c.SetReadDeadline(time.Now().Add(within))
		_, err := io.ReadFull(c, buf)
		return err
	}
	if err := echo("hello", 5*time.Second); err != nil || string(buf) != "hello" {
		t.Fatalf("pass: %q, %v", buf, err)
	}
	p.Set(Mode{Fault: Hold})
	if err := echo("held!", 300*time.Millisecond); err == nil || !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("hold: the echo came back (%q, %v); want nothing forwarded", buf, err)
	}
	p.Set(Mode{Fault: Pass})
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "held!" {
		t.Fatalf("after hold: %q, %v; want what was held, on the same connection", buf, err)
	}
}
