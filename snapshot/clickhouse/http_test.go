package clickhouse

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestQueryNativeChecksStructure serves streams captured from ClickHouse 18.16 (see
// native/testdata) the way a server sends them, 200 first.
func TestQueryNativeChecksStructure(t *testing.T) {
	types, err := os.ReadFile("native/testdata/types-18.16.native")
	if err != nil {
		t.Fatal(err)
	}
	quoting, err := os.ReadFile("native/testdata/exception-text-row-18.16.native")
	if err != nil {
		t.Fatal(err)
	}
	cat := func(b ...[]byte) []byte { return bytes.Join(b, nil) }
	tests := []struct {
		name    string
		body    []byte
		header  string
		rows    int64
		wantErr string
	}{
		{"clean", types, "", 20, ""},
		{"a row quoting an exception", cat(types, quoting), "", 21, ""},
		{"old server exception", cat(types, []byte("Code: 241, e.displayText() = DB::Exception: Memory limit exceeded, e.what() = DB::Exception\n")), "", 0,
			"clickhouse " + "%s failed mid-stream: Code: 241, e.displayText() = DB::Exception: Memory limit exceeded"},
		{"modern exception", cat(types, []byte("Code: 159. DB::Exception: Timeout exceeded: elapsed 5 seconds. (TIMEOUT_EXCEEDED)\n")), "", 0, "failed mid-stream: Code: 159. DB::Exception: Timeout exceeded"},
		{"truncated", types[:len(types)-3], "", 0, "malformed Native stream"},
		{"exception header", types, "241", 0, "answered 200 OK: (4096 bytes that are not text)"},
		{"unknown type", cat([]byte{1, 1, 1, 'j', 14}, []byte("Object('json')"), []byte{0}), "", 0, `column "j" has type Object('json'), whose values tracevault cannot check`},
	}
	for _, tt := range tests {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if tt.header != "" {
				w.Header().Set("X-ClickHouse-Exception-Code", tt.header)
			}
			w.Write(tt.body)
		}))
		h := &HTTP{Addr: strings.TrimPrefix(srv.URL, "http://")}
		ns, err := h.QueryNative(context.Background(), "SELECT 1 FORMAT Native")
		var got []byte
		if err == nil {
			got, err = io.ReadAll(ns)
			ns.Close()
		}
		srv.Close()
		want := strings.ReplaceAll(tt.wantErr, "%s", h.Addr)
		switch {
		case tt.wantErr == "" && (err != nil || string(got) != string(tt.body) || ns.Rows() != tt.rows):
			t.Errorf("%s: %d of %d bytes, %v", tt.name, len(got), len(tt.body), err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("%s: err %v, want %q", tt.name, err, want)
		case tt.wantErr != "" && strings.ContainsRune(err.Error(), 0):
			t.Errorf("%s: the error carries the stream's bytes: %q", tt.name, err)
		}
	}
}

// A server that quotes the request in its error must not make the password reach the caller.
func TestHTTPErrorsNeverCarryThePassword(t *testing.T) {
	const password = "s3cret-Pa55word"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, pw, _ := r.BasicAuth()
		body, _ := io.ReadAll(r.Body)
		http.Error(w, "Code: 62. DB::Exception: Syntax error near '"+pw+"' in "+string(body), http.StatusBadRequest)
	}))
	defer srv.Close()
	h := &HTTP{Addr: strings.TrimPrefix(srv.URL, "http://"), User: "tracevault", Password: password}
	errs := []error{h.Exec(context.Background(), "SELECT '"+password+"'", nil)}
	_, err := h.QueryNative(context.Background(), "SELECT 1 FORMAT Native")
	errs = append(errs, err)
	for i, err := range errs {
		if err == nil || strings.Contains(err.Error(), password) || !strings.Contains(err.Error(), "Syntax error") {
			t.Errorf("%d: %v", i, err)
		}
	}
}

// TestExportBrokenOff: an export whose connection fails, or carries nothing for StallTimeout,
// ends with errBrokenOff in its chain (which the source answers by exporting the partition
// again), naming the stall; a slow stream that keeps sending is not a stall, and a server's
// own error status is no broken connection.
func TestExportBrokenOff(t *testing.T) {
	types, err := os.ReadFile("native/testdata/types-18.16.native")
	if err != nil {
		t.Fatal(err)
	}
	const stall = time.Second
	tests := []struct {
		name    string
		serve   func(w http.ResponseWriter, r *http.Request)
		closed  bool // nothing listens at the address
		broken  bool // errBrokenOff in the chain
		wantErr string
	}{
		{"a slow stream that keeps sending", func(w http.ResponseWriter, r *http.Request) {
			for chunk := range slices.Chunk(types, len(types)/8+1) {
				w.Write(chunk)
				w.(http.Flusher).Flush()
				time.Sleep(stall / 5)
			}
		}, false, false, ""},
		{"stalls before its header", func(w http.ResponseWriter, r *http.Request) {
			<-r.Context().Done()
		}, false, true, "sent nothing for 1s ([clickhouse] stall_timeout)"},
		{"stalls mid-stream", func(w http.ResponseWriter, r *http.Request) {
			w.Write(types)
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		}, false, true, "sent nothing for 1s ([clickhouse] stall_timeout)"},
		{"connection cut mid-stream", func(w http.ResponseWriter, r *http.Request) {
			w.Write(types[:len(types)/2])
			w.(http.Flusher).Flush()
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
		}, false, true, "connection broke off"},
		{"nothing listens", nil, true, true, "connection refused"},
		{"the server fails the query", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "Code: 60. DB::Exception: Table db.t does not exist", http.StatusNotFound)
		}, false, false, "answered 404 Not Found: Code: 60."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				// The query, read whole: only then does the server notice a client that left.
				io.Copy(io.Discard, r.Body)
				if tt.serve != nil {
					tt.serve(w, r)
				}
			}))
			addr := strings.TrimPrefix(srv.URL, "http://")
			if tt.closed {
				srv.Close()
			} else {
				defer srv.Close()
			}
			h := &HTTP{Addr: addr, StallTimeout: stall}
			start := time.Now()
			ns, err := h.QueryNative(context.Background(), "SELECT * FROM db.t FORMAT Native")
			var got []byte
			if err == nil {
				got, err = io.ReadAll(ns)
				ns.Close()
			}
			switch {
			case tt.wantErr == "" && (err != nil || !bytes.Equal(got, types)):
				t.Fatalf("%d of %d bytes, %v", len(got), len(types), err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("err %v, want %q", err, tt.wantErr)
			case errors.Is(err, errBrokenOff) != tt.broken:
				t.Fatalf("err %v: errBrokenOff in its chain %v, want %v", err, !tt.broken, tt.broken)
			}
			t.Logf("%s: %v", time.Since(start).Round(time.Millisecond), err)
			if took := time.Since(start); tt.broken && took > 10*stall {
				t.Errorf("took %s to end; the stall timeout is %s", took, stall)
			}
		})
	}
}

// An export asks for its answer uncompressed: a modern server would gzip it otherwise, and the
// transport would gunzip it, both at a cost in CPU the bytes saved on a cluster's network do not
// repay.
func TestExportsAskForNoCompression(t *testing.T) {
	var encodings []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		encodings = append(encodings, r.Header.Get("Accept-Encoding"))
	}))
	defer srv.Close()
	h := &HTTP{Addr: strings.TrimPrefix(srv.URL, "http://")}
	ns, err := h.QueryNative(context.Background(), "SELECT 1 FORMAT Native")
	if err == nil {
		_, err = io.ReadAll(ns)
		ns.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Exec(context.Background(), "SELECT 1", nil); err != nil {
		t.Fatal(err)
	}
	for _, e := range encodings {
		if e != "" {
			t.Errorf("a request accepted %q", e)
		}
	}
	if len(encodings) != 2 {
		t.Errorf("%d requests reached the server, want 2", len(encodings))
	}
}
