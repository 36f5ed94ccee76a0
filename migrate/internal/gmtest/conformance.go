package gmtest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/tracevault/tracevault/migrate"
)

// Scratch is one subtest's empty database, made by a driver's tests, which drop it when the
// subtest ends.
type Scratch interface {
	// Dir is the directory of its migration files.
	Dir() string
	// Write puts migration files in the directory, replacing those of the same name.
	Write(t *testing.T, files map[string]string)
	// Open opens a driver on the database, closed when the subtest ends.
	Open(t *testing.T) migrate.Driver
	// Runner runs the directory's migrations through d.
	Runner(t *testing.T, d migrate.Driver) *migrate.Runner
}

// Check looks, after the step it is told the name of, at what a target can see beyond the
// version: its schema, its replicas.
type Check func(t *testing.T, s Scratch, d migrate.Driver, step string)

// Target is a migration driver under the conformance suite: how its tests make a database, and
// the files and checks each property needs in the target's SQL.
type Target struct {
	// Scratch makes an empty database for one subtest.
	Scratch func(t *testing.T) Scratch
	// Files are migrations 1 to 3, each with its down file.
	Files map[string]string
	// Check is called after every step of UpDownGotoForce, named as the step ("up 2", "down 2",
	// "up 1", "up", "down 1", "goto 1", "goto 3", "force 2", "force 3", "down").
	Check Check
	// Failure is the file set of FailureDirtyForceUp.
	Failure Failure
	// Race is the file set of ConcurrentRunnersApplyEachOnce.
	Race Race
	// Interop is what GolangMigrateInterop needs.
	Interop Interop
}

// Failure is a migration that fails part-way, and what the failure looks like.
type Failure struct {
	// Files are migration 1, which applies, and migration 2, which fails at a statement.
	Files map[string]string
	// Message lists what the failure message holds besides the force commands: the failing
	// statement and the server's error.
	Message []string
	// Undo, when set, undoes by hand what the failed migration left applied.
	Undo func(t *testing.T, s Scratch, d migrate.Driver)
	// Fixed replaces the failing file with one that applies.
	Fixed map[string]string
	// Check is called after the failure ("failed") and after force and up ("fixed").
	Check Check
}

// Race are two slow migrations that two runners race to apply.
type Race struct {
	Files map[string]string
	// Setup, when set, prepares the database on the first runner's driver before the race.
	Setup func(t *testing.T, d migrate.Driver)
	// Check, when set, checks the database after the race.
	Check func(t *testing.T, d migrate.Driver)
}

// Interop are migrations in golang-migrate's own plain SQL, at least three of them, and how
// golang-migrate reaches the scratch database.
type Interop struct {
	Files map[string]string
	// URL is golang-migrate's -database for the scratch.
	URL func(s Scratch) string
	// Prepare, when set, readies the database for golang-migrate's first run.
	Prepare func(t *testing.T, s Scratch)
	// Check is called after tracevault's up ("tracevault up") and after golang-migrate's down
	// ("golang-migrate down 1").
	Check Check
}

// Conformance runs the properties every migration driver must have, one subtest each, against
// the target's live database: the behaviours golang-migrate's database drivers share, through
// tracevault's runner.
func Conformance(t *testing.T, target Target) {
	t.Run("UpDownGotoForce", func(t *testing.T) { upDownGotoForce(t, target) })
	t.Run("FailureDirtyForceUp", func(t *testing.T) { failureDirtyForceUp(t, target) })
	t.Run("ConcurrentRunnersApplyEachOnce", func(t *testing.T) { concurrentRunnersApplyEachOnce(t, target) })
	t.Run("DriftReported", func(t *testing.T) { driftReported(t, target) })
	t.Run("GolangMigrateInterop", func(t *testing.T) { golangMigrateInterop(t, target) })
}

// check runs c, where the target gave one.
func check(c Check, t *testing.T, s Scratch, d migrate.Driver, step string) {
	t.Helper()
	if c != nil {
		c(t, s, d, step)
	}
}

// assertVersion fails the test unless the driver reads want, clean.
func assertVersion(t *testing.T, d migrate.Driver, step string, want int64) {
	t.Helper()
	v, dirty, err := d.Version(context.Background())
	if err != nil || v != want || dirty {
		t.Fatalf("%s: version %d dirty %v err %v; want %d clean", step, v, dirty, err, want)
	}
}

// upDownGotoForce: after every command the version is the one asked for, clean, and the
// target's check holds (the schema follows; every replica agrees).
func upDownGotoForce(t *testing.T, target Target) {
	s := target.Scratch(t)
	s.Write(t, target.Files)
	d := s.Open(t)
	r := s.Runner(t, d)
	ctx := context.Background()
	steps := []struct {
		name string
		do   func() error
		want int64
	}{
		{"up 2", func() error { _, err := r.Migrate(ctx, migrate.Op{Kind: "up", N: 2}, nil); return err }, 2},
		{"down 2", func() error { _, err := r.Migrate(ctx, migrate.Op{Kind: "down", N: 2}, nil); return err }, migrate.NilVersion},
		{"up 1", func() error { _, err := r.Migrate(ctx, migrate.Op{Kind: "up", N: 1}, nil); return err }, 1},
		{"up", func() error { _, err := r.Migrate(ctx, migrate.Op{Kind: "up"}, nil); return err }, 3},
		{"down 1", func() error { _, err := r.Migrate(ctx, migrate.Op{Kind: "down", N: 1}, nil); return err }, 2},
		{"goto 1", func() error { _, err := r.Migrate(ctx, migrate.Op{Kind: "goto", Version: 1}, nil); return err }, 1},
		{"goto 3", func() error { _, err := r.Migrate(ctx, migrate.Op{Kind: "goto", Version: 3}, nil); return err }, 3},
		{"force 2", func() error { return r.Force(ctx, 2) }, 2},
		{"force 3", func() error { return r.Force(ctx, 3) }, 3},
		{"down", func() error { _, err := r.Migrate(ctx, migrate.Op{Kind: "down"}, nil); return err }, migrate.NilVersion},
	}
	for _, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		assertVersion(t, d, st.name, st.want)
		check(target.Check, t, s, d, st.name)
	}
}

// failureDirtyForceUp: a failing statement leaves dirty=1 at its version with the statement,
// the server's error and the force commands; up refuses; force then up works.
func failureDirtyForceUp(t *testing.T, target Target) {
	f := target.Failure
	s := target.Scratch(t)
	s.Write(t, f.Files)
	d := s.Open(t)
	r := s.Runner(t, d)
	ctx := context.Background()
	_, err := r.Migrate(ctx, migrate.Op{Kind: "up"}, nil)
	var de *migrate.DirtyError
	if !errors.As(err, &de) {
		t.Fatalf("up with a bad statement: err = %v, want a DirtyError", err)
	}
	for _, want := range append(slices.Clone(f.Message), r.Command+" force 2", r.Command+" force 1") {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("failure message lacks %q:\n%v", want, err)
		}
	}
	if v, dirty, _ := d.Version(ctx); v != 2 || !dirty {
		t.Fatalf("after the failure: version %d dirty %v, want 2 dirty", v, dirty)
	}
	check(f.Check, t, s, d, "failed")
	if _, err := r.Migrate(ctx, migrate.Op{Kind: "up"}, nil); !errors.As(err, &de) || !strings.Contains(err.Error(), "dirty at version 2") {
		t.Fatalf("up on a dirty database: err = %v, want the dirty refusal", err)
	}
	// The operator undoes the half-applied step and fixes the file.
	if f.Undo != nil {
		f.Undo(t, s, d)
	}
	s.Write(t, f.Fixed)
	if err := r.Force(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Migrate(ctx, migrate.Op{Kind: "up"}, nil); err != nil {
		t.Fatalf("up after force: %v", err)
	}
	assertVersion(t, d, "up after force", 2)
	check(f.Check, t, s, d, "fixed")
}

// concurrentRunnersApplyEachOnce: two runners with their own connections start together; the
// lock lets one apply everything, and the other then finds nothing to do.
func concurrentRunnersApplyEachOnce(t *testing.T, target Target) {
	race := target.Race
	s := target.Scratch(t)
	s.Write(t, race.Files)
	a, b := s.Open(t), s.Open(t)
	if race.Setup != nil {
		race.Setup(t, a)
	}
	RaceUp(t, s.Runner(t, a), s.Runner(t, b), 2)
	if race.Check != nil {
		race.Check(t, a)
	}
}

// driftReported: status reports an applied file that changed, whether a statement or only a
// comment changed, and only that file.
func driftReported(t *testing.T, target Target) {
	s := target.Scratch(t)
	first, body := upFile(t, target.Files, 1)
	s.Write(t, map[string]string{first: body, "2_x.up.sql": "SELECT 1;"})
	d := s.Open(t)
	ctx := context.Background()
	if _, err := s.Runner(t, d).Migrate(ctx, migrate.Op{Kind: "up"}, nil); err != nil {
		t.Fatal(err)
	}
	s.Write(t, map[string]string{"2_x.up.sql": "SELECT 2;"})
	st, err := s.Runner(t, d).Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Drift) != 1 || st.Drift[0].Version != 2 || st.Applied[0].Drift || st.Applied[0].Recorded == "" {
		t.Errorf("status drift = %+v, applied = %+v; want drift on version 2 only, with checksums recorded", st.Drift, st.Applied)
	}
	s.Write(t, map[string]string{"2_x.up.sql": "SELECT 1;", first: body + "\n-- edited"})
	if st, err = s.Runner(t, d).Status(ctx); err != nil {
		t.Fatal(err)
	}
	if len(st.Drift) != 1 || st.Drift[0].Version != 1 || st.Applied[1].Drift {
		t.Errorf("drift = %+v; want version 1 only", st.Drift)
	}
}

// upFile returns the name and body of version v's up file.
func upFile(t *testing.T, files map[string]string, v int) (string, string) {
	t.Helper()
	for _, name := range slices.Sorted(maps.Keys(files)) {
		if strings.HasPrefix(name, fmt.Sprintf("%d_", v)) && strings.HasSuffix(name, ".up.sql") {
			return name, files[name]
		}
	}
	t.Fatalf("no up file of version %d", v)
	return "", ""
}

// golangMigrateInterop: golang-migrate (the real CLI) applies 1..2, tracevault reads 2 and
// continues to the last; golang-migrate reads that and goes down one through tracevault's rows.
func golangMigrateInterop(t *testing.T, target Target) {
	in := target.Interop
	s := target.Scratch(t)
	bin := Binary(t)
	s.Write(t, in.Files)
	last := int64(0)
	for name := range in.Files {
		if strings.HasSuffix(name, ".up.sql") {
			last++
		}
	}
	if in.Prepare != nil {
		in.Prepare(t, s)
	}
	url := in.URL(s)
	gm := func(args ...string) string {
		t.Helper()
		out, err := Run(t, bin, append([]string{"-path", s.Dir(), "-database", url}, args...)...)
		if err != nil {
			t.Fatalf("golang-migrate %v: %v\n%s", args, err, out)
		}
		return out
	}
	gm("up", "2")
	d := s.Open(t)
	r := s.Runner(t, d)
	ctx := context.Background()
	st, err := r.Status(ctx)
	if err != nil || st.Version != 2 || st.Dirty || int64(len(st.Pending)) != last-2 {
		t.Fatalf("tracevault status after golang-migrate up 2: %+v, %v; want version 2 clean, %d pending", st, err, last-2)
	}
	if _, err := r.Migrate(ctx, migrate.Op{Kind: "up"}, nil); err != nil {
		t.Fatalf("tracevault up after golang-migrate: %v", err)
	}
	check(in.Check, t, s, d, "tracevault up")
	if out := gm("version"); out != fmt.Sprint(last) {
		t.Errorf("golang-migrate version after tracevault up = %q, want %d", out, last)
	}
	gm("down", "1")
	assertVersion(t, d, "golang-migrate down 1", last-1)
	check(in.Check, t, s, d, "golang-migrate down 1")
}
