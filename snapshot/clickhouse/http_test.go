package clickhouse

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

func TestTailCheckedCatchesMidStreamException(t *testing.T) {
	data := bytes.Repeat([]byte{0, 1, 2, 'x'}, 50_000)
	tests := []struct {
		name    string
		body    []byte
		wantErr string
	}{
		{"clean", data, ""},
		{"short clean", []byte("abc"), ""},
		{"old server exception", append(append([]byte{}, data...), "Code: 241, e.displayText() = DB::Exception: Memory limit exceeded"...), "Memory limit"},
		{"modern exception", append(append([]byte{}, data[:100]...), "Code: 159. DB::Exception: Timeout exceeded"...), "Timeout exceeded"},
	}
	for _, tt := range tests {
		tc := &tailChecked{rc: io.NopCloser(bytes.NewReader(tt.body)), addr: "ch:8123"}
		got, err := io.ReadAll(tc)
		switch {
		case tt.wantErr == "" && (err != nil || !bytes.Equal(got, tt.body)):
			t.Errorf("%s: got %d bytes, %v; want all %d", tt.name, len(got), err, len(tt.body))
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("%s: err %v, want %q", tt.name, err, tt.wantErr)
		}
	}
}
