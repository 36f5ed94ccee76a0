package clickhouse

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fakeServer answers on a raw TCP listener the way a ClickHouse HTTP interface fails: each
// INSERT (its query in the URL) goes to insert, which owns the connection from then on; any
// other query (Load's check that the INSERT no longer runs, and its KILL) is answered "0".
func fakeServer(t *testing.T, insert func(c net.Conn, r *http.Request)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					if strings.HasPrefix(req.URL.Query().Get("query"), "INSERT") {
						insert(c, req) // a connection it leaves open serves the next request
						continue
					}
					io.Copy(io.Discard, req.Body)
					io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n0\n")
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// reset ends a connection with a TCP RST, as a server or a network that drops it does.
func reset(c net.Conn) {
	c.(*net.TCPConn).SetLinger(0)
	c.Close()
}

// zeros is n bytes of data to send.
type zeros struct{ n int64 }

func (z *zeros) Read(p []byte) (int, error) {
	if z.n <= 0 {
		return 0, io.EOF
	}
	k := min(int64(len(p)), z.n)
	clear(p[:k])
	z.n -= k
	return int(k), nil
}

// failingData sends some bytes, then fails as a damaged object does.
type failingData struct{ n int }

var errDamaged = errors.New("object data/ab/abcd: checksum mismatch")

func (f *failingData) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errDamaged
	}
	k := min(len(p), f.n)
	f.n -= k
	return k, nil
}

const typeMismatch = "Code: 53, e.displayText() = DB::Exception: Type mismatch for column x: expected UInt32, got String"

// TestLoadErrorsSayWhetherToLoadAgain: a load whose connection broke (a reset mid-body, a
// server that closed without answering, nothing listening, a stall) is BrokenOff, which a
// restore answers by loading again from the object; a load the server refused (a type
// mismatch), even one it refused while the data was still being sent, and a load whose own data
// failed are not, and say the server's words or the data's failure, never "broken pipe".
func TestLoadErrorsSayWhetherToLoadAgain(t *testing.T) {
	tests := []struct {
		name    string
		insert  func(c net.Conn, r *http.Request) // nil: nothing listens
		data    func() io.Reader
		broken  bool
		wantErr []string // any of them
	}{
		{"reset mid-body", func(c net.Conn, r *http.Request) {
			io.CopyN(io.Discard, r.Body, 64<<10)
			reset(c)
		}, func() io.Reader { return &zeros{n: 16 << 20} }, true, []string{"connection reset", "broken pipe"}},
		{"closed after the data, unanswered", func(c net.Conn, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			c.Close()
		}, func() io.Reader { return &zeros{n: 1 << 20} }, true, []string{"EOF"}},
		{"nothing listens", nil, func() io.Reader { return &zeros{n: 1 << 10} }, true, []string{"connection refused"}},
		{"stalls: reads no data", func(c net.Conn, r *http.Request) {
			time.Sleep(5 * time.Second)
		}, func() io.Reader { return &zeros{n: 256 << 20} }, true, []string{"neither read data nor answered for 500ms ([clickhouse] stall_timeout)"}},
		{"refused after the data", func(c net.Conn, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			fmt.Fprintf(c, "HTTP/1.1 500 Internal Server Error\r\nContent-Length: %d\r\n\r\n%s", len(typeMismatch), typeMismatch)
		}, func() io.Reader { return &zeros{n: 1 << 20} }, false, []string{"answered 500 Internal Server Error: " + typeMismatch}},
		{"refused while the data is being sent", func(c net.Conn, r *http.Request) {
			io.CopyN(io.Discard, r.Body, 64<<10)
			fmt.Fprintf(c, "HTTP/1.1 500 Internal Server Error\r\nX-ClickHouse-Exception-Code: 53\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s", len(typeMismatch), typeMismatch)
			reset(c)
		}, func() io.Reader { return &zeros{n: 64 << 20} }, false, []string{"answered 500 Internal Server Error: " + typeMismatch}},
		{"the data fails", func(c net.Conn, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			c.Close()
		}, func() io.Reader { return &failingData{n: 100 << 10} }, false, []string{"read the data to send: " + errDamaged.Error()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var addr string
			if tt.insert != nil {
				addr = fakeServer(t, tt.insert)
			} else {
				ln, _ := net.Listen("tcp", "127.0.0.1:0")
				addr = ln.Addr().String()
				ln.Close()
			}
			h := &HTTP{Addr: addr, StallTimeout: 500 * time.Millisecond}
			// An answer racing a failed write is read every time, not by luck.
			runs := 1
			if !tt.broken {
				runs = 20
			}
			recovered := 0 // answers read from a connection whose write failed
			defer func() { t.Logf("%d of %d answers read after a failed write", recovered, runs) }()
			for range runs {
				start := time.Now()
				err := h.Load(context.Background(), "INSERT INTO db.t FORMAT Native", tt.data())
				if err == nil {
					t.Fatal("the load succeeded")
				}
				if BrokenOff(err) != tt.broken {
					t.Fatalf("BrokenOff(%v) = %v, want %v", err, !tt.broken, tt.broken)
				}
				found := false
				for _, w := range tt.wantErr {
					found = found || strings.Contains(err.Error(), w)
				}
				if !found {
					t.Fatalf("err %v, want one of %q", err, tt.wantErr)
				}
				if tt.name == "the data fails" && !errors.Is(err, errDamaged) {
					t.Fatalf("err %v does not carry the data's own error", err)
				}
				if strings.Contains(err.Error(), "while the data was still being sent") {
					recovered++
				}
				if took := time.Since(start); took > 10*time.Second {
					t.Fatalf("took %s", took)
				}
			}
		})
	}
}

// TestRetryLoadsAgainOnlyBrokenConnections: Retry runs a transfer again while its connection
// breaks, up to Attempts, and then names the attempts and the cause; a refused query, a failed
// object and a cancelled job end it at once.
func TestRetryLoadsAgainOnlyBrokenConnections(t *testing.T) {
	wait := retryWait
	retryWait = func(int) time.Duration { return time.Millisecond }
	defer func() { retryWait = wait }()
	broken := fmt.Errorf("%w: clickhouse http 127.0.0.1:1: write tcp: write: broken pipe", errBrokenOff)
	refusedErr := &statusError{errors.New("clickhouse 127.0.0.1:1 answered 400 Bad Request: " + typeMismatch)}
	tests := []struct {
		name     string
		errs     []error // of each attempt; past the end, success
		cancel   bool
		attempts int
		wantErr  string
	}{
		{"succeeds at once", nil, false, 1, ""},
		{"breaks once, then loads", []error{broken}, false, 2, ""},
		{"breaks twice, then loads", []error{broken, broken}, false, 3, ""},
		{"breaks every time", []error{broken, broken, broken, broken}, false, 3, "after 3 attempts: the connection broke off: clickhouse http 127.0.0.1:1: write tcp: write: broken pipe"},
		{"a type mismatch", []error{refusedErr}, false, 1, typeMismatch},
		{"breaks, then a type mismatch", []error{broken, refusedErr}, false, 2, typeMismatch},
		{"a damaged object", []error{errDamaged}, false, 1, errDamaged.Error()},
		{"the job is cancelled", []error{broken, broken}, true, 1, "broken pipe"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var n atomic.Int32
			err := Retry(ctx, nil, "again", nil, func() error {
				i := int(n.Add(1)) - 1
				if tt.cancel {
					cancel()
				}
				if i < len(tt.errs) {
					return tt.errs[i]
				}
				return nil
			})
			if int(n.Load()) != tt.attempts {
				t.Errorf("%d attempts, want %d", n.Load(), tt.attempts)
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("err %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("err %v, want %q", err, tt.wantErr)
			}
		})
	}
}
