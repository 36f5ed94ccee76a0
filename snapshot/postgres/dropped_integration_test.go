package postgres

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/tracevault/tracevault/internal/devstack"
	"github.com/tracevault/tracevault/internal/faultproxy"
	"github.com/tracevault/tracevault/snapshot/store"
)

// lockedBuffer is a log destination tests read while a restore writes it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// droppedFixture is the demo's data and a table of about 2 MB, backed up, and a fault proxy in
// front of the server: only that table's COPY carries more than loadResetAfter bytes on one
// connection, so Reset breaks a table load and nothing else.
type droppedFixture struct {
	env    *devstack.Env
	srcDSN string
	repo   *store.Repository
	m      *store.Manifest
	proxy  *faultproxy.Proxy
	// split is the restore's SplitBytes: 0 the default (public.big loads on one connection),
	// 1 MiB to load it split over both.
	split int64
}

const loadResetAfter = 512 << 10

func newDroppedFixture(t *testing.T) *droppedFixture {
	t.Helper()
	env := devstack.Require(t)
	f := &droppedFixture{env: env, srcDSN: seededDatabase(t, env), repo: openRepo(t)}
	exec1(t, dial(t, f.srcDSN), "CREATE TABLE public.big (id int PRIMARY KEY, payload text); "+
		"INSERT INTO public.big SELECT i, repeat(md5(i::text), 3) FROM generate_series(1, 20000) i")
	var err error
	if f.m, err = backup(t, f.repo, &Source{DSN: f.srcDSN}); err != nil {
		t.Fatalf("backup: %v", err)
	}
	u, err := url.Parse(env.PGDSN)
	if err != nil {
		t.Fatal(err)
	}
	if f.proxy, err = faultproxy.Listen("127.0.0.1:0", u.Host, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.proxy.Close() })
	return f
}

// restore restores the snapshot into a new database through the proxy; it returns what the
// restore logged.
func (f *droppedFixture) restore(t *testing.T) (string, string, error) {
	t.Helper()
	u, _ := url.Parse(f.env.PGDSN)
	u.Host = f.proxy.Addr()
	target := devstack.ScratchName("it_pg_dropped")
	dropAfter(t, f.env, target)
	var logged lockedBuffer
	_, err := restore(t, f.repo, f.m, RestoreOptions{DSN: u.String(), Database: target, Log: slog.New(slog.NewTextHandler(&logged, nil)), SplitBytes: f.split})
	return target, logged.String(), err
}

// TestRestoreLoadsATableAgainWhenItsConnectionDrops: a table's COPY whose connection is reset
// mid-stream is loaded again, in a new transaction on a new connection, and the restore ends
// equal to the source.
//
// Split over both connections, the load whose one connection was reset is loaded again on one
// connection, emptied first, so the rows the other part may have committed are not doubled.
func TestRestoreLoadsATableAgainWhenItsConnectionDrops(t *testing.T) {
	f := newDroppedFixture(t)
	for _, tc := range []struct {
		split  int64
		logged string
	}{
		{0, "a table's load lost its connection"},
		{1 << 20, "a split load failed; loading the table again on one connection"},
	} {
		f.split = tc.split
		f.proxy.Set(faultproxy.Mode{Fault: faultproxy.Reset, After: loadResetAfter, Resets: 1})
		before := f.proxy.Stats().Resets
		target, logged, err := f.restore(t)
		if err != nil {
			t.Fatalf("split %d: restore through a proxy that resets one connection: %v", tc.split, err)
		}
		if got := f.proxy.Stats().Resets - before; got != 1 {
			t.Errorf("split %d: the proxy reset %d connections, want 1", tc.split, got)
		}
		if !strings.Contains(logged, tc.logged) || !strings.Contains(logged, "public.big") {
			t.Errorf("split %d: the restore logged no second load of public.big (%q):\n%s", tc.split, tc.logged, logged)
		}
		if diffs := diffMaps(checksums(t, dial(t, f.srcDSN)), checksums(t, dial(t, dsnFor(t, f.env.PGDSN, target)))); len(diffs) > 0 {
			t.Errorf("split %d: tables differ after the restore:\n%s", tc.split, strings.Join(diffs, "\n"))
		}
	}
}

// TestRestoreGivesUpOnATableWhoseConnectionKeepsDropping: a table whose every connection drops
// fails the restore after loadAttempts loads, naming them and the cause; the database the
// restore created is dropped again.
func TestRestoreGivesUpOnATableWhoseConnectionKeepsDropping(t *testing.T) {
	f := newDroppedFixture(t)
	f.proxy.Set(faultproxy.Mode{Fault: faultproxy.Reset, After: loadResetAfter})
	_, _, err := f.restore(t)
	if err == nil {
		t.Fatal("a restore through a proxy that resets every connection succeeded")
	}
	msg := err.Error()
	if !strings.Contains(msg, "public.big") || !strings.Contains(msg, fmt.Sprintf("after %d attempts", loadAttempts)) || !strings.Contains(msg, "was dropped again") {
		t.Errorf("err %v; want it to name the table, the %d attempts and the database dropped", err, loadAttempts)
	}
	if got := f.proxy.Stats().Resets; got < loadAttempts {
		t.Errorf("the proxy reset %d connections, fewer than the %d attempts", got, loadAttempts)
	}
}
