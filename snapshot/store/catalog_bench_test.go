package store

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// BenchmarkCatalog reads the catalog of a file:// repository of 500 and 2,000 hourly snapshots,
// each manifest like a daemon's (40 objects, three components, a scope, a cut, a 2 KiB section).
// "first" is a Repository's first read: a GET and a decode per manifest, what every read cost
// before the cache. "repeat" is the next read of the same Repository: a listing, and a copy of
// each cached manifest for the caller; B-kept/manifest is the heap the cache holds between reads.
// The files are in the page cache either way, so on Azure, where each GET is a round trip,
// "first" costs far more and the ratio is smaller still.
func BenchmarkCatalog(b *testing.B) {
	ctx := context.Background()
	for _, n := range []int{500, 2000} {
		dir := b.TempDir()
		writeHourlyManifests(b, dir, n)
		fsb, err := NewFS(dir)
		if err != nil {
			b.Fatal(err)
		}
		read := func(b *testing.B, r *Repository) {
			c, err := r.Catalog(ctx)
			if err != nil || len(c.Snapshots) != n || len(c.Damaged) != 0 {
				b.Fatalf("catalog: %d snapshots, %d damaged, %v; want %d", len(c.Snapshots), len(c.Damaged), err, n)
			}
		}
		b.Run(fmt.Sprintf("%d/first", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				r := openRepo(b, fsb, Options{MustExist: true})
				b.StartTimer()
				read(b, r)
			}
		})
		b.Run(fmt.Sprintf("%d/repeat", n), func(b *testing.B) {
			b.ReportAllocs()
			r := openRepo(b, fsb, Options{MustExist: true})
			before := heapAfterGC()
			read(b, r)
			kept := heapAfterGC() - before // what the daemon holds between reads: the cache
			for b.Loop() {
				read(b, r)
			}
			runtime.KeepAlive(r)
			b.ReportMetric(float64(kept)/float64(n), "B-kept/manifest") // after the loop, which resets metrics
		})
	}
}

func heapAfterGC() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// writeHourlyManifests stores n manifests, one an hour, as CommitManifest encodes them, but
// without a sync per file: the benchmark reads them, and thousands of fsyncs would only make
// building the repository slow.
func writeHourlyManifests(b *testing.B, dir string, n int) {
	b.Helper()
	fsb, err := NewFS(dir)
	if err != nil {
		b.Fatal(err)
	}
	r := openRepo(b, fsb, Options{})
	if err := os.MkdirAll(filepath.Join(dir, "snapshots"), 0o750); err != nil {
		b.Fatal(err)
	}
	section, _ := json.Marshal(map[string]string{"schema": strings.Repeat("CREATE TABLE default.observations (id String) ENGINE = ReplacingMergeTree; ", 28)})
	start := time.Date(2025, 12, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		t := start.Add(time.Duration(i) * time.Hour)
		m := &Manifest{ID: fmt.Sprintf("%s-%06x", t.Format("20060102T150405Z"), i), Start: t, End: t.Add(4 * time.Minute),
			Status: StatusComplete, Host: "tracevault-0", Tags: []string{"scheduled"},
			Scope:    &Scope{Sources: []string{"clickhouse", "postgres", "zookeeper"}},
			Cut:      &Cut{Time: t, Sources: []SourceCut{{Source: "postgres", Time: t, Position: "0/16B3748"}, {Source: "clickhouse", Time: t}}},
			Sections: map[string]json.RawMessage{"clickhouse": section}}
		for _, src := range m.Scope.Sources {
			m.Components = append(m.Components, Component{Source: src, Start: t, End: m.End, Status: StatusComplete})
		}
		for j := range 40 {
			m.Objects = append(m.Objects, ManifestObject{
				ObjectRef: ObjectRef{ID: fmt.Sprintf("%032x", i*40+j), Size: 1 << 20, RawSize: 4 << 20, SHA256: sha0, Fingerprint: fmt.Sprintf("ch/default/observations/2025%02d/%d", j%12+1, i)},
				Source:    "clickhouse", Kind: "partition", Database: "default", Table: "observations", Partition: fmt.Sprintf("2025%02d", j%12+1), Rows: 100000, Reused: j > 0,
			})
		}
		if err := r.sign(m); err != nil {
			b.Fatal(err)
		}
		plain, err := json.Marshal(m)
		if err != nil {
			b.Fatal(err)
		}
		stored := r.codec.encodeDocument(plain)
		raw, err := io.ReadAll(stored)
		stored.Close()
		if err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.FromSlash(manifestName(m.ID))), raw, 0o640); err != nil {
			b.Fatal(err)
		}
	}
}
