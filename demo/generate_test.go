package demo

import (
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tracevault/tracevault/migrate"
)

func TestGenerateIsDeterministicAndSpread(t *testing.T) {
	o := Options{Traces: 2000, Seed: 42}
	if err := o.defaults(); err != nil {
		t.Fatal(err)
	}
	w := newWorld(o.Seed)
	a := generateChunk(o, w, 0, 0, o.Traces)
	b := generateChunk(o, w, 0, 0, o.Traces)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("same seed and chunk generated different rows")
	}
	o2 := o
	o2.Seed = 43
	if reflect.DeepEqual(a[0].cols[0], generateChunk(o2, w, 0, 0, o.Traces)[0].cols[0]) {
		t.Fatal("a different seed generated the same trace ids")
	}

	months := map[time.Month]int{}
	for _, ts := range a[0].cols[1].([]time.Time) {
		months[ts.Month()]++
	}
	if len(months) != o.Months {
		t.Errorf("traces fall into %d months, want %d: %v", len(months), o.Months, months)
	}
	for _, s := range a {
		for i, c := range s.cols {
			if n := reflect.ValueOf(c).Len(); n != s.n {
				t.Errorf("%s.%s has %d values, want %d", s.table, s.names[i], n, s.n)
			}
		}
	}
	if obs := a[1].n; obs < o.Traces || obs > o.Traces*observationsMax {
		t.Errorf("%d observations for %d traces, want 1..%d each", obs, o.Traces, observationsMax)
	}
}

// TestEmbeddedMigrations checks the files the binary carries: each version has its down, and
// every replicated ClickHouse table has a ZooKeeper path of its own database and name, so no
// two tables, and no two databases (scratch ones in tests), share a replication group.
func TestEmbeddedMigrations(t *testing.T) {
	replicatedEngine := regexp.MustCompile(`(?s)^CREATE TABLE IF NOT EXISTS (\w+) ON CLUSTER default \(.*\) ENGINE = Replicated\w*MergeTree\('([^']*)', '\{replica\}'`)
	tests := []struct {
		target     string
		versions   []int64
		replicated []string
	}{
		{"clickhouse", []int64{1, 2, 3, 4, 5}, []string{"traces", "observations", "scores", "blob_storage_file_log", "project_environments"}},
		{"clickhouse-modern", []int64{1, 2, 3}, nil}, // one server: nothing replicates
		{"postgres", []int64{1, 2, 3, 4}, nil},
	}
	for _, tt := range tests {
		dir, err := extractMigrations(tt.target)
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(dir)
		ms, err := migrate.Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		dialect := migrate.ClickHouse
		if tt.target == "postgres" {
			dialect = migrate.PostgreSQL
		}
		var versions []int64
		var replicated []string
		for _, m := range ms {
			versions = append(versions, m.Version)
			if m.Down == "" {
				t.Errorf("%s %d (%s) has no down file", tt.target, m.Version, m.Title)
			}
			body, err := os.ReadFile(m.Up)
			if err != nil {
				t.Fatal(err)
			}
			expanded := migrate.Expand(string(body), "default", "demo_x")
			if strings.Contains(expanded, "{{") {
				t.Errorf("%s: a placeholder is left after expansion", m.Up)
			}
			for _, st := range migrate.Split(expanded, dialect) {
				sql := strings.TrimSpace(regexp.MustCompile(`(?m)^--.*$`).ReplaceAllString(st.SQL, ""))
				if e := replicatedEngine.FindStringSubmatch(sql); e != nil {
					replicated = append(replicated, e[1])
					if want := "/clickhouse/tables/{shard}/demo_x/" + e[1]; e[2] != want {
						t.Errorf("%s: table %s replicates under %s, want %s", m.Up, e[1], e[2], want)
					}
				}
			}
		}
		if !reflect.DeepEqual(versions, tt.versions) || !reflect.DeepEqual(replicated, tt.replicated) {
			t.Errorf("%s: versions %v with replicated tables %v; want %v and %v", tt.target, versions, replicated, tt.versions, tt.replicated)
		}
		for _, name := range tt.replicated {
			if !slices.Contains(ReplicatedTables, name) {
				t.Errorf("ReplicatedTables lacks %s", name)
			}
		}
	}
}
