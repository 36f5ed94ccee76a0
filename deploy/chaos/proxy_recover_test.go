package chaos

import (
	"io"
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
