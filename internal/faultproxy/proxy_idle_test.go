package faultproxy

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestProxyResetsOnlyResetsConnections: Reset with Resets = 1 resets the first connection past
// After bytes and lets every later one pass, until the mode is set again.
func TestProxyResetsOnlyResetsConnections(t *testing.T) {
	body := bytes.Repeat([]byte("tracevault"), 20_000) // 200 kB
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = w.Write(body)
	}))
	defer srv.Close()
	p, err := Listen("127.0.0.1:0", strings.TrimPrefix(srv.URL, "http://"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	get := func() error {
		// A connection of its own for each request, which the client closes: one the server
		// closes first the proxy ends with a RST, which may cut what the client has yet to read.
		tr := &http.Transport{}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr}).Get("http://" + p.Addr() + "/")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		got, err := io.ReadAll(resp.Body)
		if err == nil && !bytes.Equal(got, body) {
			t.Fatalf("%d bytes of %d", len(got), len(body))
		}
		return err
	}
	for round := range 2 {
		p.Set(Mode{Fault: Reset, After: 4096, Resets: 1})
		if err := get(); err == nil {
			t.Fatalf("round %d: the first request passed; want it reset", round)
		}
		for i := range 3 {
			if err := get(); err != nil {
				t.Fatalf("round %d: request %d after the reset: %v", round, i+2, err)
			}
		}
	}
	if got := p.Stats().Resets; got != 2 {
		t.Errorf("%d resets counted, want 2", got)
	}
}

// TestProxyClosesIdleConnections: IdleClose ends a connection the server answered on and that
// then carried nothing, with a FIN, as a server's keep-alive timeout does; a request the server
// takes longer than IdleClose to answer is not idle.
func TestProxyClosesIdleConnections(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(600 * time.Millisecond)
		}
		_, _ = io.WriteString(w, "ok")
	}))
	defer srv.Close()
	p, err := Listen("127.0.0.1:0", strings.TrimPrefix(srv.URL, "http://"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	p.Set(Mode{Fault: Pass, IdleClose: 200 * time.Millisecond})
	conn, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	ask := func(path string) {
		t.Helper()
		if _, err := io.WriteString(conn, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	ask("/slow") // 600 ms of work on one connection, three times IdleClose
	ask("/")
	start := time.Now()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := r.ReadByte(); err != io.EOF {
		t.Fatalf("an idle connection read %v, want io.EOF (a FIN)", err)
	}
	if took := time.Since(start); took < 150*time.Millisecond || took > 2*time.Second {
		t.Errorf("closed %s after its last answer, IdleClose is 200ms", took)
	}
	if got := p.Stats().IdleClosed; got != 1 {
		t.Errorf("%d idle closes counted, want 1", got)
	}
}
