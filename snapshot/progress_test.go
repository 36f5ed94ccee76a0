package snapshot

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tracevault/tracevault/snapshot/progress"
	"github.com/tracevault/tracevault/snapshot/store"
)

// plannedSource sizes its work and stores one object per table, reusable by fingerprint, each
// reporting its rows as a COPY or a Native scan does.
type plannedSource struct{ tables map[string]string }

func (s plannedSource) Name() string { return "test" }

func (s plannedSource) Plan(_ context.Context, rep progress.Reporter) error {
	for table, data := range s.tables {
		rep.Plan(progress.Unit{Source: "test", Table: table, Bytes: int64(len(data)), Rows: int64(strings.Count(data, "\n"))})
	}
	return nil
}

func (s plannedSource) Backup(ctx context.Context, w *Writer) (any, error) {
	for table, data := range s.tables {
		// Rows as listed, for a reused object; the stream's count replaces them otherwise.
		n := int64(strings.Count(data, "\n"))
		if _, err := w.Put(ctx, store.ManifestObject{Kind: "table", Database: "db", Table: table, Rows: n}, "fp-"+table, rowCounter{strings.NewReader(data), n}); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

type rowCounter struct {
	io.Reader
	rows int64
}

func (r rowCounter) Rows() int64 { return r.rows }

// TestProgressThroughTheSetAndRepository: a backup reports the planned totals and what it
// stores (a reused object at its size); reading back (verify --read-data, as a restore reads)
// counts the bytes and, once an object's checksum held, its manifest rows, and names each
// object's table. A corrupt object's rows never count.
func TestProgressThroughTheSetAndRepository(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	repo, err := store.Open(ctx, store.Options{URL: "file://" + dir, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	src := plannedSource{tables: map[string]string{"a": "1\n2\n3\n", "b": strings.Repeat("row\n", 1000)}}
	const bytes, rows = 6 + 4000, 3 + 1000
	for _, run := range []string{"first", "reused"} {
		tr := progress.NewTracker()
		if _, err := Run(progress.With(ctx, tr), repo, []Source{src}, Options{Log: quiet}); err != nil {
			t.Fatal(err)
		}
		s := tr.State()
		if s.Bytes != bytes || s.Rows != rows || s.ExpectedBytes != bytes || s.ExpectedRows != rows || s.Units != 2 || s.PlannedUnits != 2 {
			t.Errorf("%s backup: %+v; want %d bytes and %d rows done and expected, 2 units", run, s, bytes, rows)
		}
		if s.Current.Source != "test" || !strings.HasPrefix(s.Current.Table, "db.") {
			t.Errorf("%s backup: current unit %+v", run, s.Current)
		}
	}

	m, err := repo.Snapshot(ctx, "latest")
	if err != nil {
		t.Fatal(err)
	}
	tr := progress.NewTracker()
	if _, err := repo.Verify(progress.With(ctx, tr), []string{m.ID}, true); err != nil {
		t.Fatal(err)
	}
	if s := tr.State(); s.Bytes != bytes || s.Rows != rows || s.ExpectedBytes != bytes || s.Units != 2 || !strings.HasPrefix(s.Current.Table, "db.") {
		t.Errorf("verify --read-data: %+v; want %d bytes, %d rows, 2 units, a named table", s, bytes, rows)
	}

	// Flip a byte of b's object: its rows must not count.
	var b store.ManifestObject
	for _, o := range m.Objects {
		if o.Table == "b" {
			b = o
		}
	}
	path := filepath.Join(dir, filepath.FromSlash(b.Name()))
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)/2] ^= 0xff
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	tr = progress.NewTracker()
	rep, err := repo.Verify(progress.With(ctx, tr), []string{m.ID}, true)
	if err != nil || len(rep.Problems) != 1 {
		t.Fatalf("verify of a corrupt object: %v, %+v", err, rep.Problems)
	}
	if s := tr.State(); s.Rows != 3 || s.Units != 1 {
		t.Errorf("with b corrupt: %d rows, %d units done; want only a's 3 rows and 1 unit", s.Rows, s.Units)
	}
}
