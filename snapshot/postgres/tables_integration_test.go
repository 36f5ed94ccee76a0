package postgres

import (
	"strings"
	"testing"

	"github.com/tracevault/tracevault/internal/devstack"
)

// TestRestoreTables: --tables reloads tables into the existing schema, one transaction per
// group of tables tied by foreign keys; rows it would orphan are refused and rolled back,
// tables holding rows need --replace, and a glob matching nothing is an error.
func TestRestoreTables(t *testing.T) {
	env := devstack.Require(t)
	ctx := testContext(t)
	dsn := seededDatabase(t, env)
	conn := dial(t, dsn)
	var db string
	if err := conn.QueryRow(ctx, "SELECT current_database()").Scan(&db); err != nil {
		t.Fatal(err)
	}
	repo := openRepo(t)
	m, err := backup(t, repo, &Source{DSN: dsn})
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	atBackup := checksums(t, conn)

	// After the backup: keys revoked, prompts edited, and a new project with its own key.
	exec1(t, conn, `DELETE FROM api_keys WHERE project_id = 'proj-01-01';
		UPDATE prompts SET version = version + 100;
		INSERT INTO projects (id, org_id, name) VALUES ('proj-new', 'org-01', 'new');
		INSERT INTO prompts (id, project_id, name, version, prompt, created_by) VALUES ('pr-new', 'proj-new', 'n', 1, '{}', 'user-0001')`)

	for _, tc := range []struct {
		name      string
		tables    []string
		force     bool
		wantErr   []string
		wantSteps int
		restored  []string // tables back at their snapshot checksum afterwards
	}{
		{name: "rows need force", tables: []string{"public.api_keys"}, wantErr: []string{"hold rows", "--replace"}},
		{name: "glob matching nothing", tables: []string{"public.nope*"}, force: true, wantErr: []string{"matches no table"}},
		{name: "parent alone would orphan new children", tables: []string{"projects"}, force: true,
			wantErr: []string{"prompts_project_id_fkey", "rows of public.prompts", "rolled back"}},
		{name: "independent tables, one transaction each", tables: []string{"public.api_keys", "public.score_configs"}, force: true,
			wantSteps: 2, restored: []string{"public.api_keys", "public.score_configs"}},
		{name: "parent and child together", tables: []string{"public.projects", "public.prompts"}, force: true,
			wantSteps: 1, restored: []string{"public.projects", "public.prompts"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := checksums(t, conn)
			plan, err := restore(t, repo, m, RestoreOptions{DSN: env.PGDSN, Database: db, Tables: tc.tables, Replace: tc.force})
			if len(tc.wantErr) > 0 {
				if err == nil {
					t.Fatal("restore succeeded, want a refusal")
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q lacks %q", err, w)
					}
				}
				if diffs := diffMaps(before, checksums(t, conn)); len(diffs) > 0 {
					t.Errorf("a refused restore changed tables:\n%s", strings.Join(diffs, "\n"))
				}
				return
			}
			if err != nil {
				t.Fatalf("restore --tables %v: %v", tc.tables, err)
			}
			if len(plan.Steps) != tc.wantSteps {
				t.Errorf("%d transactions, want %d: %+v", len(plan.Steps), tc.wantSteps, plan.Steps)
			}
			after := checksums(t, conn)
			for _, tb := range tc.restored {
				if after[tb] != atBackup[tb] {
					t.Errorf("%s not back at its snapshot state", tb)
				}
			}
		})
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM projects WHERE id = 'proj-new'").Scan(&n); err != nil || n != 0 {
		t.Errorf("projects restored together with prompts still hold proj-new: %d, %v", n, err)
	}
}
