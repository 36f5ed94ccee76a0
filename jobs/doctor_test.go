package jobs

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/tracevault/tracevault/snapshot/store"
)

// TestDaemonProbesAppendOnly: a daemon started in append-only mode probes its credential; on a
// directory (where the mode is advisory) the probe finds overwrite and delete allowed and says
// so as an error; without append_only nothing is probed.
func TestDaemonProbesAppendOnly(t *testing.T) {
	for _, tc := range []struct {
		appendOnly bool
		want       string
	}{
		{true, "a thief of it can destroy the repository"},
		{false, ""},
	} {
		var buf bytes.Buffer
		log := slog.New(slog.NewTextHandler(&buf, nil))
		repo, err := store.Open(context.Background(), store.Options{URL: "file://" + t.TempDir(), AppendOnly: tc.appendOnly, Log: quiet})
		if err != nil {
			t.Fatal(err)
		}
		checkAppendOnly(context.Background(), repo, log)
		if got := buf.String(); (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("append_only %t: logged %q, want %q", tc.appendOnly, got, tc.want)
		}
	}
}
