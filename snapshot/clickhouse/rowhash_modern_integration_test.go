package clickhouse_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/tracevault/tracevault/snapshot"
	"github.com/tracevault/tracevault/snapshot/clickhouse"
	"github.com/tracevault/tracevault/snapshot/clickhouse/internal/chtest"
	"github.com/tracevault/tracevault/snapshot/store"
)

var exportedTable = regexp.MustCompile("FROM `[^`]+`\\.`([^`]+)`")

// refusesRowHash stands between tracevault and ch-modern's HTTP interface and refuses every
// export that selects the row hash, as a server refuses to hash a column type it cannot.
type refusesRowHash struct {
	proxy   *httputil.ReverseProxy
	mu      sync.Mutex
	refused map[string]int // by table
}

func (p *refusesRowHash) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	if q := string(body); strings.Contains(q, clickhouse.RowHashColumn) {
		p.mu.Lock()
		p.refused[exportedTable.FindStringSubmatch(q)[1]]++
		p.mu.Unlock()
		http.Error(w, "Code: 43. DB::Exception: Illegal type Unhashable of argument of function cityHash64. (ILLEGAL_TYPE_OF_ARGUMENT)", http.StatusBadRequest)
		return
	}
	p.proxy.ServeHTTP(w, r)
}

// TestModernBackupSurvivesARefusedRowHash: a server that refuses the row hash an export appends
// costs the backup nothing. The export is sent again without the hash, the table's other
// partitions go without it from then on, and each partition is summed by a query of its own.
func TestModernBackupSurvivesARefusedRowHash(t *testing.T) {
	f := newModernFixture(t, 1000)
	target, err := url.Parse("http://" + f.env.CHModernHTTP)
	if err != nil {
		t.Fatal(err)
	}
	p := &refusesRowHash{proxy: httputil.NewSingleHostReverseProxy(target), refused: map[string]int{}}
	srv := httptest.NewServer(p)
	defer srv.Close()
	src := &clickhouse.Source{Native: []string{f.env.CHModernNative}, HTTP: []string{strings.TrimPrefix(srv.URL, "http://")},
		Conn: clickhouse.ConnOptions{User: "default"}, Parallel: 1,
		Filter: clickhouse.Filter{Databases: []string{f.db}}, Mode: clickhouse.ModeLogical, Log: chtest.Quiet}
	m, err := snapshot.Run(context.Background(), chtest.Repo(t), []snapshot.Source{src}, snapshot.Options{Log: chtest.Quiet})
	if err != nil || m.Status != store.StatusComplete {
		t.Fatalf("backup with the row hash refused: %v", err)
	}
	sec, _, err := clickhouse.SnapshotSection(m)
	if err != nil {
		t.Fatal(err)
	}
	summed := 0
	for _, tb := range sec.Tables {
		walked := false
		for _, part := range tb.Partitions {
			want := strings.Fields(f.sql(fmt.Sprintf("SELECT count(), sum(cityHash64(tuple(*))) FROM %s.%s WHERE _partition_id = '%s'", f.db, tb.Name, part.ID)))
			if part.Content == nil || fmt.Sprint(part.Content.Rows) != want[0] || fmt.Sprint(part.Content.Sum) != want[1] {
				t.Errorf("%s partition %s: content %+v, want the server's count and sum %v", tb.Name, part.ID, part.Content, want)
			}
			walked = walked || part.Checked == clickhouse.CheckedStream
			summed++
		}
		// One partition at a time: the first export's refusal spares the others.
		if n := p.refused[tb.Name]; walked && n != 1 {
			t.Errorf("%s: the row hash was refused %d times, want once", tb.Name, n)
		}
	}
	if summed == 0 || len(p.refused) == 0 {
		t.Fatalf("%d partitions, %d tables refused: the test proves nothing", summed, len(p.refused))
	}
}
