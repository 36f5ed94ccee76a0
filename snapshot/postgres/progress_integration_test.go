package postgres

import (
	"testing"

	"github.com/tracevault/tracevault/internal/devstack"
	"github.com/tracevault/tracevault/snapshot"
	"github.com/tracevault/tracevault/snapshot/progress"
)

// TestBackupProgress: the catalog sizes a backup (every table of the schemas, its rows as
// ANALYZE estimated them), and what the backup reports done is what the manifest records: the
// COPY rows and the bytes of every object. A restore reads the same bytes back.
func TestBackupProgress(t *testing.T) {
	env := devstack.Require(t)
	ctx := testContext(t)
	dsn := seededDatabase(t, env)
	exec1(t, dial(t, dsn), "ANALYZE")
	repo := openRepo(t)
	tr := progress.NewTracker()
	m, err := snapshot.Run(progress.With(ctx, tr), repo, []snapshot.Source{&Source{DSN: dsn, Log: quiet}}, snapshot.Options{Log: quiet})
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	var rows, bytes int64
	tables := map[string]bool{}
	for _, o := range m.Objects {
		rows += o.Rows
		bytes += o.RawSize
		if o.Rows > 0 {
			tables[o.Unit().Table] = true
		}
	}
	s := tr.State()
	if s.Rows != rows || s.Bytes != bytes || s.Units != len(m.Objects) {
		t.Errorf("reported %d rows, %d bytes, %d units; the manifest holds %d rows, %d bytes, %d objects", s.Rows, s.Bytes, s.Units, rows, bytes, len(m.Objects))
	}
	if s.PlannedUnits < len(tables) || s.ExpectedRows < rows/2 || s.ExpectedRows > rows*2 || s.ExpectedBytes <= 0 {
		t.Errorf("planned %d units, %d rows, %d bytes; want at least the %d tables with rows and about %d rows", s.PlannedUnits, s.ExpectedRows, s.ExpectedBytes, len(tables), rows)
	}

	target := devstack.ScratchName("it_pg_progress")
	dropAfter(t, env, target)
	tr = progress.NewTracker()
	for _, o := range m.Objects {
		tr.Plan(o.Unit())
	}
	rs := NewRestorer(RestoreOptions{DSN: env.PGDSN, Database: target, Log: quiet})
	plan, err := rs.Plan(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	if err := rs.Execute(progress.With(ctx, tr), repo, plan, nil); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if s := tr.State(); s.Bytes < bytes || s.Rows != rows || s.Current.Source != "postgres" {
		t.Errorf("restore reported %d bytes, %d rows, current %+v; want the objects' %d bytes and %d rows, named", s.Bytes, s.Rows, s.Current, bytes, rows)
	}
}
