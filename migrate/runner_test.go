package migrate

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// fakeDriver records what the runner asks of a database, golang-migrate style.
type fakeDriver struct {
	version  int64
	dirty    bool
	history  []string // "v/dirty" after each SetVersion
	sums     map[int64]string
	ran      []string
	failOn   string // a statement containing this fails
	verified int
}

func (f *fakeDriver) Name() string                              { return "fake database" }
func (f *fakeDriver) Dialect() Dialect                          { return ClickHouse }
func (f *fakeDriver) Lock(context.Context, time.Duration) error { return nil }
func (f *fakeDriver) Unlock(context.Context) error              { return nil }
func (f *fakeDriver) Run(_ context.Context, file string, stmts []Statement) error {
	for _, s := range stmts {
		if f.failOn != "" && strings.Contains(s.SQL, f.failOn) {
			return &StatementError{File: file, Statement: s.SQL, Err: errors.New("syntax error near " + f.failOn)}
		}
		f.ran = append(f.ran, s.SQL)
	}
	return nil
}
func (f *fakeDriver) Version(context.Context) (int64, bool, error) { return f.version, f.dirty, nil }
func (f *fakeDriver) SetVersion(_ context.Context, v int64, dirty bool) error {
	f.version, f.dirty = v, dirty
	f.history = append(f.history, fmt.Sprintf("%d/%v", v, dirty))
	return nil
}
func (f *fakeDriver) Checksums(context.Context) (map[int64]string, error) { return f.sums, nil }
func (f *fakeDriver) SetChecksum(_ context.Context, v int64, _, sum string) error {
	if sum == "" {
		delete(f.sums, v)
	} else {
		f.sums[v] = sum
	}
	return nil
}
func (f *fakeDriver) Verify(context.Context, []Statement) error { f.verified++; return nil }
func (f *fakeDriver) Close() error                              { return nil }

func fixture(t *testing.T) (*Runner, *fakeDriver, string) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"1_a.up.sql": "CREATE a {{cluster}};", "1_a.down.sql": "DROP a;",
		"2_b.up.sql": "CREATE b; CREATE b2;", "2_b.down.sql": "DROP b2; DROP b;",
		"5_c.up.sql": "CREATE c;", "5_c.down.sql": "DROP c;",
	})
	ms, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	d := &fakeDriver{version: NilVersion, sums: map[int64]string{}}
	return &Runner{Driver: d, Migrations: ms, Cluster: "default", Command: "tracevault migrate --target clickhouse"}, d, dir
}

func TestPlan(t *testing.T) {
	tests := []struct {
		name string
		cur  int64
		op   Op
		want []string // version/direction/target
		err  string
	}{
		{"up all from none", NilVersion, Op{Kind: "up"}, []string{"1 up 1", "2 up 2", "5 up 5"}, ""},
		{"up 1", 1, Op{Kind: "up", N: 1}, []string{"2 up 2"}, ""},
		{"down all", 5, Op{Kind: "down"}, []string{"5 down 2", "2 down 1", "1 down -1"}, ""},
		{"down 1", 2, Op{Kind: "down", N: 1}, []string{"2 down 1"}, ""},
		{"goto up", 1, Op{Kind: "goto", Version: 5}, []string{"2 up 2", "5 up 5"}, ""},
		{"goto down", 5, Op{Kind: "goto", Version: 1}, []string{"5 down 2", "2 down 1"}, ""},
		{"goto current", 2, Op{Kind: "goto", Version: 2}, nil, ""},
		{"goto unknown", 2, Op{Kind: "goto", Version: 3}, nil, "no migration file has version 3"},
		{"down from a version without file", 4, Op{Kind: "down"}, nil, "no file"},
	}
	for _, tt := range tests {
		r, d, _ := fixture(t)
		d.version = tt.cur
		steps, err := r.Plan(context.Background(), tt.op)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: err = %v, want %q", tt.name, err, tt.err)
			}
			continue
		}
		var got []string
		for _, s := range steps {
			got = append(got, fmt.Sprintf("%d %s %d", s.Version, s.Direction, s.Target))
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: plan %v, %v; want %v", tt.name, got, err, tt.want)
		}
	}
}

// TestMigrateMarksDirtyLikeGolangMigrate: each step sets its target dirty, runs, then clean,
// so a crash mid-file leaves the same state golang-migrate would.
func TestMigrateMarksDirtyLikeGolangMigrate(t *testing.T) {
	r, d, _ := fixture(t)
	if _, err := r.Migrate(context.Background(), Op{Kind: "up"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Migrate(context.Background(), Op{Kind: "down", N: 1}, nil); err != nil {
		t.Fatal(err)
	}
	want := []string{"1/true", "1/false", "2/true", "2/false", "5/true", "5/false", "2/true", "2/false"}
	if !reflect.DeepEqual(d.history, want) {
		t.Errorf("schema_migrations writes %v, want %v", d.history, want)
	}
	if d.ran[0] != "CREATE a ON CLUSTER default" {
		t.Errorf("{{cluster}} not expanded: ran %q", d.ran[0])
	}
	if _, ok := d.sums[5]; ok || len(d.sums) != 2 || d.verified != 4 {
		t.Errorf("after up all and down 1: checksums %v (want versions 1 and 2), verified %d times (want 4)", d.sums, d.verified)
	}
}

func TestFailureLeavesDirtyWithGuidance(t *testing.T) {
	r, d, _ := fixture(t)
	d.failOn = "b2"
	done, err := r.Migrate(context.Background(), Op{Kind: "up"}, nil)
	var de *DirtyError
	if !errors.As(err, &de) || len(done) != 1 || d.version != 2 || !d.dirty {
		t.Fatalf("got done=%v err=%v version=%d dirty=%v; want 1 step done, a DirtyError, dirty at 2", done, err, d.version, d.dirty)
	}
	for _, want := range []string{"failed at statement:\n    CREATE b2", "syntax error near b2", "tracevault migrate --target clickhouse force 2", "tracevault migrate --target clickhouse force 1", "tracevault migrate --target clickhouse up"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("failure message lacks %q:\n%v", want, err)
		}
	}
	d.failOn = ""
	ran := len(d.ran)
	_, err = r.Migrate(context.Background(), Op{Kind: "up"}, nil)
	if !errors.As(err, &de) || len(d.ran) != ran || !strings.Contains(err.Error(), "dirty at version 2") {
		t.Fatalf("up on a dirty database: err = %v, ran %d more statements; want a refusal", err, len(d.ran)-ran)
	}
	if err := r.Force(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Migrate(context.Background(), Op{Kind: "up"}, nil); err != nil || d.version != 5 || d.dirty {
		t.Fatalf("force then up: err = %v, version %d dirty %v; want 5 clean", err, d.version, d.dirty)
	}
}

func TestStatusReportsDrift(t *testing.T) {
	r, d, dir := fixture(t)
	if _, err := r.Migrate(context.Background(), Op{Kind: "up", N: 2}, nil); err != nil {
		t.Fatal(err)
	}
	delete(d.sums, 1) // as if golang-migrate had applied it: no checksum
	writeFiles(t, dir, map[string]string{"2_b.up.sql": "CREATE b; CREATE b3;"})
	st, err := r.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Version != 2 || len(st.Applied) != 2 || len(st.Pending) != 1 || len(st.Drift) != 1 || st.Drift[0].Version != 2 || st.Applied[0].Drift {
		t.Errorf("status = %+v; want version 2, 2 applied, 1 pending, drift on version 2 only", st)
	}
	if filepath.Base(st.Pending[0].File) != "5_c.up.sql" {
		t.Errorf("pending file %s, want 5_c.up.sql", st.Pending[0].File)
	}
}

func TestBeforeSeesPlanAndCanVeto(t *testing.T) {
	r, d, _ := fixture(t)
	var seen []Step
	_, err := r.Migrate(context.Background(), Op{Kind: "up"}, func(_ context.Context, s []Step) error {
		seen = s
		return errors.New("snapshot failed")
	})
	if err == nil || len(seen) != 3 || len(d.history) != 0 {
		t.Errorf("veto: err %v, saw %d steps, %d writes; want the error, 3 steps, no writes", err, len(seen), len(d.history))
	}
}
