package postgres

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tracevault/tracevault/internal/devstack"
	"github.com/tracevault/tracevault/snapshot/store"
)

// smallSnapshot backs up a scratch database with one table into a file:// repository in dir.
func smallSnapshot(t *testing.T, env *devstack.Env, dir string) (*store.Repository, *store.Manifest) {
	t.Helper()
	dsn := env.PGDatabase(t, "it_pg_hostile")
	exec1(t, dial(t, dsn), "CREATE TABLE public.t (id int PRIMARY KEY, note text); CREATE INDEX t_note ON public.t (note); INSERT INTO public.t SELECT i, 'n' || i FROM generate_series(1, 100) i")
	repo, err := store.Open(testContext(t), store.Options{URL: "file://" + dir, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	m, err := backup(t, repo, &Source{DSN: dsn})
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	return repo, m
}

// TestRestoreRunsNoSQLFromASwappedObject: someone with write access to the repository replaces
// the pre-data or post-data object with another valid object that starts with their own
// statement, or a table's rows with as many rows of their own. The restore must fail on the
// checksum before any statement of it runs, and commit none of those rows, also when the
// table loads split over several connections.
func TestRestoreRunsNoSQLFromASwappedObject(t *testing.T) {
	env := devstack.Require(t)
	var forged strings.Builder
	for i := 1; i <= 100; i++ {
		fmt.Fprintf(&forged, "%d\tforged\n", i)
	}
	for _, section := range []string{"pre-data", "post-data", "table data", "table data, split"} {
		t.Run(section, func(t *testing.T) {
			ctx := testContext(t)
			dir := t.TempDir()
			repo, m := smallSnapshot(t, env, dir)
			sec, err := ReadSection(m)
			if err != nil {
				t.Fatal(err)
			}
			victim, content := sec.PreData, "CREATE TABLE public.pwned (x int);\n"
			switch section {
			case "post-data":
				victim = sec.PostData
			case "table data", "table data, split":
				for _, tr := range sec.Tables {
					if tr.FullName() == "public.t" {
						victim = tr.ObjectRecord
					}
				}
				content = forged.String()
			}
			// A valid object of the same repository (same codec), with hostile content.
			evil, _, err := repo.PutObject(ctx, "", strings.NewReader(content))
			if err != nil {
				t.Fatal(err)
			}
			body, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(evil.Name())))
			if err != nil {
				t.Fatal(err)
			}
			target := store.ObjectRef{ID: victim.Object}
			if err := os.WriteFile(filepath.Join(dir, filepath.FromSlash(target.Name())), body, 0o644); err != nil {
				t.Fatal(err)
			}

			// An existing empty target: a failed restore leaves it in place to inspect.
			db := devstack.ScratchName("it_pg_hostile_target")
			exec1(t, dial(t, env.PGDSN), "CREATE DATABASE "+Ident(db))
			dropAfter(t, env, db)
			split := map[bool]int64{true: 1}[strings.HasSuffix(section, "split")]
			_, err = restore(t, repo, m, RestoreOptions{DSN: env.PGDSN, Database: db, SplitBytes: split})
			if !errors.Is(err, store.ErrCorrupt) {
				t.Fatalf("restore from a swapped %s object: %v, want a checksum failure", section, err)
			}
			var pwned bool
			if err := dial(t, dsnFor(t, env.PGDSN, db)).QueryRow(ctx, "SELECT to_regclass('public.pwned') IS NOT NULL").Scan(&pwned); err != nil {
				t.Fatal(err)
			}
			if pwned {
				t.Errorf("a statement of the swapped %s object ran before its checksum was checked", section)
			}
			if strings.HasPrefix(section, "table data") {
				var n int64
				if err := dial(t, dsnFor(t, env.PGDSN, db)).QueryRow(ctx, "SELECT count(*) FROM public.t").Scan(&n); err != nil {
					t.Fatal(err)
				}
				if n != 0 {
					t.Errorf("%d forged rows were committed before the checksum failed", n)
				}
			}
		})
	}
}

// TestPlanRefusesScriptsWithoutChecksum: a manifest whose postgres section lacks pre-data or
// post-data (a partial snapshot, or an edited manifest), or whose schema object records no
// checksum, is refused by the planner with the reason, not a panic, and nothing is created.
func TestPlanRefusesScriptsWithoutChecksum(t *testing.T) {
	env := devstack.Require(t)
	_, m := smallSnapshot(t, env, t.TempDir())
	for _, tc := range []struct {
		name string
		edit func(sec *Section, objs []store.ManifestObject)
		want string
	}{
		{"no pre-data", func(sec *Section, _ []store.ManifestObject) { sec.PreData = nil }, "has no pre-data object"},
		{"no post-data", func(sec *Section, _ []store.ManifestObject) { sec.PostData = nil }, "has no post-data object"},
		{"empty pre-data record", func(sec *Section, _ []store.ManifestObject) { sec.PreData = &ObjectRecord{} }, "has no pre-data object"},
		{"pre-data without checksum", func(sec *Section, objs []store.ManifestObject) {
			for i := range objs {
				if objs[i].ID == sec.PreData.Object {
					objs[i].SHA256 = ""
				}
			}
		}, "records no valid checksum for its pre-data object"},
		{"post-data checksum not the section's", func(sec *Section, _ []store.ManifestObject) {
			sec.PostData.SHA256 = strings.Repeat("0", 64)
		}, "records no valid checksum for its post-data object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			edited := *m
			edited.Objects = append([]store.ManifestObject(nil), m.Objects...)
			sec, err := ReadSection(m)
			if err != nil {
				t.Fatal(err)
			}
			tc.edit(sec, edited.Objects)
			raw, err := json.Marshal(sec)
			if err != nil {
				t.Fatal(err)
			}
			edited.Sections = map[string]json.RawMessage{"postgres": raw}
			db := devstack.ScratchName("it_pg_plan")
			dropAfter(t, env, db)
			plan, err := NewRestorer(RestoreOptions{DSN: env.PGDSN, Database: db, Log: quiet}).Plan(testContext(t), &edited)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("plan = %+v, %v; want an error containing %q", plan, err, tc.want)
			}
		})
	}
}
