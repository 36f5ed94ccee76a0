package clickhouse

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"
)

// rowsOf is a stream of fixed bytes that says it held rows, then ends with end.
type rowsOf struct {
	*bytes.Reader
	rows int64
	end  error
}

func (r *rowsOf) Read(p []byte) (int, error) {
	if r.Len() == 0 {
		return 0, r.end
	}
	return r.Reader.Read(p)
}
func (r *rowsOf) Rows() int64  { return r.rows }
func (r *rowsOf) Close() error { return nil }

// TestLazyNativeVouchesOnlyForACheckedEnd: an export's object keeps its listing's fingerprint
// only when its stream reached io.EOF and the end check found the listing's rows. A stream that
// never opened, or failed, vouches for nothing, even if a writer stored what it gave: the object
// CI found empty under its partition's fingerprint came from a request that failed with a
// wrapped io.EOF, which the Azure SDK took for the end of the data.
func TestLazyNativeVouchesOnlyForACheckedEnd(t *testing.T) {
	wrappedEOF := fmt.Errorf("clickhouse http: Post: %w", io.EOF)
	for _, tt := range []struct {
		name    string
		open    error // the request's failure
		end     error // the stream's end
		matched bool  // what the end check finds
		want    bool
	}{
		{"ended and matched its listing", nil, io.EOF, true, true},
		{"ended holding other rows", nil, io.EOF, false, false},
		{"the request failed with a wrapped EOF", wrappedEOF, nil, true, false},
		{"the stream failed with a wrapped EOF", nil, wrappedEOF, true, false},
		{"the stream broke off", nil, errors.New("connection reset by peer"), true, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			checked := false
			l := &lazyNative{
				open: func() (rowStream, error) {
					if tt.open != nil {
						return nil, tt.open
					}
					return &rowsOf{bytes.NewReader([]byte("blocks")), 7, tt.end}, nil
				},
				atEnd: func(int64) (bool, error) { checked = true; return tt.matched, nil },
			}
			_, err := io.ReadAll(l)
			if tt.want && (err != nil || !checked) {
				t.Fatalf("read: %v, checked %v; want a checked end", err, checked)
			}
			if got := l.MatchesFingerprint(); got != tt.want {
				t.Errorf("MatchesFingerprint() = %v after %v; want %v", got, err, tt.want)
			}
		})
	}
}
