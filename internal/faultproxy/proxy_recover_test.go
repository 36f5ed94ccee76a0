package faultproxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestProxyUnavailableEnds: a client's keep-alive connection answered with 503 reaches the
// server again once the proxy passes: the end of a 503 spell is the end for every client.
func TestProxyUnavailableEnds(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	defer srv.Close()
	p, err := Listen("127.0.0.1:0", strings.TrimPrefix(srv.URL, "http://"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	client := &http.Client{}
	get := func() int {
		t.Helper()
		resp, err := client.Get("http://" + p.Addr() + "/")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, tc := range []struct {
		mode Mode
		want int
	}{{Mode{Fault: Unavailable}, 503}, {Mode{Fault: Unavailable}, 503}, {Mode{Fault: Pass}, 200}, {Mode{Fault: Pass}, 200}} {
		p.Set(tc.mode)
		if got := get(); got != tc.want {
			t.Fatalf("in mode %s: %d, want %d", tc.mode.Fault, got, tc.want)
		}
	}
}

// TestProxyUnavailableHead: the 503 to a HEAD has no body, or the next answer on the connection
// would start with it.
func TestProxyUnavailableHead(t *testing.T) {
	p, err := Listen("127.0.0.1:0", "127.0.0.1:1", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	p.Set(Mode{Fault: Unavailable})
	conn, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "HEAD /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(conn)
	for _, method := range []string{http.MethodHead, http.MethodGet} {
		resp, err := http.ReadResponse(r, &http.Request{Method: method})
		if err != nil {
			t.Fatalf("answer to %s: %v", method, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("answer to %s: %d", method, resp.StatusCode)
		}
	}
}
