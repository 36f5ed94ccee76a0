package clickhouse_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/tracevault/tracevault/snapshot"
	"github.com/tracevault/tracevault/snapshot/clickhouse"
	"github.com/tracevault/tracevault/snapshot/clickhouse/internal/chtest"
	"github.com/tracevault/tracevault/snapshot/clickhouse/restore"
	"github.com/tracevault/tracevault/snapshot/store"
)

// endsEarly stands between tracevault and ClickHouse's HTTP interface and answers the next
// `ends` partition exports of events_core with a 200 and an empty, well-formed body, as ClickHouse 26.7 did
// for a partition of 972 rows while it was being killed -9 (the chaos suite's modern run): no
// error on the wire, and a Native stream, which has no end marker, that ends at a block
// boundary.
type endsEarly struct {
	proxy *httputil.ReverseProxy
	ends  atomic.Int64 // answers still to cut; < 0: every one
	cut   atomic.Int64
	// changes is how many exports of events_core change their partition (change) before
	// they are answered or cut, as the load does between a backup's listing and its export.
	changes atomic.Int64
	change  func(partition string)
	changed atomic.Value // the partition changed last
	// mu makes an answer's change and cut one step: partitions are exported in parallel, and
	// the cut must fall on the partition that changed.
	mu sync.Mutex
}

func (e *endsEarly) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	if q := string(body); strings.HasPrefix(q, "SELECT *") && strings.Contains(q, ".`events_core` ") && strings.HasSuffix(q, "FORMAT Native") {
		e.mu.Lock()
		defer e.mu.Unlock()
		if e.changes.Load() > 0 {
			e.changes.Add(-1)
			_, rest, _ := strings.Cut(q, "_partition_id = '")
			partition, _, _ := strings.Cut(rest, "'")
			e.change(partition)
			e.changed.Store(partition)
		}
		if n := e.ends.Load(); n != 0 {
			e.ends.Add(-1)
			e.cut.Add(1)
			w.Header().Set("X-ClickHouse-Format", "Native")
			w.WriteHeader(http.StatusOK)
			return
		}
	}
	e.proxy.ServeHTTP(w, r)
}

// TestModernExportsRefuseAnAnswerEndedEarly: an export whose answer ends early and cleanly holds
// fewer rows than the partition's unchanged parts show. It must be exported again, never stored
// (a stored object would be reused by fingerprint by every later backup, and verify passes it:
// its hash is its own); when every answer ends early the set is partial and names the cause.
func TestModernExportsRefuseAnAnswerEndedEarly(t *testing.T) {
	f := newModernFixture(t, 2000)
	// events_core's columns are all walkable, so its exports are checked by their stream, not by
	// the server's query log (which would refuse an answer the server never gave). Lightweight
	// updates leave patch parts: the check counts rows as SELECT reads them.
	f.sql("UPDATE " + f.db + ".events_full SET bookmarked = true WHERE cityHash64(span_id) % 7 = 0")
	want := f.checksums(f.db)
	target, err := url.Parse("http://" + f.env.CHModernHTTP)
	if err != nil {
		t.Fatal(err)
	}
	e := &endsEarly{proxy: httputil.NewSingleHostReverseProxy(target)}
	// A row of the partition once more: a new part, as an insert of the load makes.
	e.change = func(partition string) {
		f.sql(fmt.Sprintf("INSERT INTO %s.events_core SELECT * FROM %s.events_core WHERE _partition_id = '%s' LIMIT 1", f.db, f.db, partition))
	}
	srv := httptest.NewServer(e)
	defer srv.Close()
	for _, tt := range []struct {
		name    string
		ends    int64
		changes int64
		status  string
	}{
		{"one answer ends early", 1, 0, store.StatusComplete},
		// The partition's parts changed, so its listing cannot vouch for the rows; an empty
		// answer for parts that hold rows is still one ended early.
		{"one answer ends early while its partition changes", 1, 1, store.StatusComplete},
		// Not ended early: the export read more rows than were listed. Its object holds them,
		// and must not be reused by the listing it does not match.
		{"an export reads a partition changed since it was listed", 0, 1, store.StatusComplete},
		{"every answer ends early", -1, 0, store.StatusPartial},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e.ends.Store(tt.ends)
			e.cut.Store(0)
			e.changes.Store(tt.changes)
			e.changed.Store("")
			repo := chtest.Repo(t)
			src := &clickhouse.Source{Native: []string{f.env.CHModernNative}, HTTP: []string{strings.TrimPrefix(srv.URL, "http://")},
				Conn:   clickhouse.ConnOptions{User: "default"},
				Filter: clickhouse.Filter{Databases: []string{f.db}}, Mode: clickhouse.ModeLogical, Log: chtest.Quiet}
			m, err := snapshot.Run(context.Background(), repo, []snapshot.Source{src}, snapshot.Options{Log: chtest.Quiet})
			if e.cut.Load() == 0 && tt.ends != 0 || e.changes.Load() != 0 {
				t.Fatal("no export went through the proxy: the test proves nothing")
			}
			if m == nil || m.Status != tt.status {
				t.Fatalf("snapshot %v: %v; want %s", m, err, tt.status)
			}
			if tt.status == store.StatusPartial {
				if !errors.Is(err, snapshot.ErrPartial) || !strings.Contains(m.Components[0].Error, "ended its answer early") {
					t.Fatalf("err %v, components %+v; want a partial set saying the server ended its answer early", err, m.Components)
				}
				return
			}
			if tt.changes > 0 {
				// What the snapshot must hold now, the change included.
				want = f.checksums(f.db)
				if changed := e.changed.Load().(string); tt.ends == 0 {
					for _, o := range m.Objects {
						if o.Table == "events_core" && o.Partition == changed && o.Fingerprint != "" {
							t.Errorf("events_core partition %s, exported after it changed, was stored under its listing's fingerprint", changed)
						}
					}
				}
			}
			copyDB := f.db + "_copy"
			f.repo = repo
			f.restore(m, restore.Options{DatabaseMap: map[string]string{f.db: copyDB}})
			f.sameChecksums("restored after "+tt.name, f.checksums(copyDB), want)
			f.sql("DROP DATABASE " + copyDB + " SYNC")
		})
	}
}
