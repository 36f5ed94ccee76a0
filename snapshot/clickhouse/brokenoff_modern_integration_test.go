package clickhouse_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tracevault/tracevault/internal/faultproxy"
	"github.com/tracevault/tracevault/snapshot"
	"github.com/tracevault/tracevault/snapshot/clickhouse"
	"github.com/tracevault/tracevault/snapshot/clickhouse/internal/chtest"
	"github.com/tracevault/tracevault/snapshot/clickhouse/restore"
	"github.com/tracevault/tracevault/snapshot/progress"
	"github.com/tracevault/tracevault/snapshot/store"
)

// TestModernExportsSurviveBrokenConnections puts the fault proxy of the chaos suite between
// tracevault and ClickHouse 26.7's HTTP interface, where the partitions' exports flow. A
// connection reset mid-export, or one that stalls (open, carrying nothing), costs the partition
// another export, and the set completes equal to its source once the fault clears; a fault
// that outlasts the attempts leaves a partial set naming it, never a complete one.
func TestModernExportsSurviveBrokenConnections(t *testing.T) {
	f := newModernFixture(t, 20000)
	want := f.checksums(f.db)
	proxy, err := faultproxy.Listen("127.0.0.1:0", f.env.CHModernHTTP, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	const stall = 2 * time.Second
	tests := []struct {
		name   string
		mode   faultproxy.Mode
		clears time.Duration // after the backup starts; 0 never
		status string
		err    string // in the set's error
	}{
		{"resets that clear", faultproxy.Mode{Fault: faultproxy.Reset, After: 32 << 10}, 2 * time.Second, store.StatusComplete, ""},
		{"a stall that clears", faultproxy.Mode{Fault: faultproxy.Stall, Stall: time.Minute}, 3 * time.Second, store.StatusComplete, ""},
		{"resets that outlast the attempts", faultproxy.Mode{Fault: faultproxy.Reset, After: 32 << 10}, 0, store.StatusPartial, "the connection broke off"},
		{"a stall that outlasts the attempts", faultproxy.Mode{Fault: faultproxy.Stall, Stall: time.Minute}, 0, store.StatusPartial, "sent nothing for 2s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			repo := chtest.Repo(t)
			proxy.Set(tt.mode)
			defer proxy.Set(faultproxy.Mode{Fault: faultproxy.Pass})
			if tt.clears > 0 {
				defer time.AfterFunc(tt.clears, func() { proxy.Set(faultproxy.Mode{Fault: faultproxy.Pass}) }).Stop()
			}
			src := &clickhouse.Source{Native: []string{f.env.CHModernNative}, HTTP: []string{proxy.Addr()},
				Conn:   clickhouse.ConnOptions{User: "default", StallTimeout: stall},
				Filter: clickhouse.Filter{Databases: []string{f.db}}, Mode: clickhouse.ModeLogical, Log: chtest.Quiet}
			tracker := progress.NewTracker()
			start := time.Now()
			m, err := snapshot.Run(progress.With(context.Background(), tracker), repo, []snapshot.Source{src}, snapshot.Options{Log: chtest.Quiet})
			took := time.Since(start)
			if m == nil || m.Status != tt.status {
				t.Fatalf("snapshot %v after %s: %v; want %s", m, took, err, tt.status)
			}
			t.Logf("%s in %s: %v", m.Status, took.Round(time.Millisecond), err)
			if tt.status == store.StatusPartial {
				if !errors.Is(err, snapshot.ErrPartial) || len(m.Components) != 1 || !strings.Contains(m.Components[0].Error, tt.err) {
					t.Fatalf("err %v, components %+v; want a partial set whose error says %q", err, m.Components, tt.err)
				}
				return
			}
			// Progress counts what was kept: a partition exported again counts once.
			if got, want := tracker.State().Bytes, m.Totals().RawBytes; got != want {
				t.Errorf("progress counted %d bytes; the snapshot holds %d", got, want)
			}
			rep, err := repo.Verify(context.Background(), []string{m.ID}, true)
			if err != nil || len(rep.Problems) > 0 || rep.ObjectsRead != rep.Objects {
				t.Fatalf("verify --read-data: %v, %+v", err, rep)
			}
			copyDB := f.db + "_copy"
			f.repo = repo
			f.restore(m, restore.Options{DatabaseMap: map[string]string{f.db: copyDB}})
			f.sameChecksums("restored after "+tt.name, f.checksums(copyDB), want)
			f.sql("DROP DATABASE " + copyDB + " SYNC")
		})
	}
}
