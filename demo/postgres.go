package demo

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tracevault/tracevault/config"
	mpg "github.com/tracevault/tracevault/migrate/postgres"
)

func seedPostgres(ctx context.Context, o Options, w *world, rows map[string]int64) error {
	if err := migratePostgres(ctx, o); err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, o.PostgresDSN)
	if err != nil {
		return fmt.Errorf("connect to postgres for demo seed: %w", err)
	}
	defer conn.Close(context.Background())
	var existing int64
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM users").Scan(&existing); err != nil {
		return fmt.Errorf("count demo users: %w", err)
	}
	if existing > 0 {
		return fmt.Errorf("postgres users has %d rows: %w", existing, ErrAlreadySeeded)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin demo seed transaction: %w", err)
	}
	defer tx.Rollback(context.Background())
	for _, t := range postgresTables(o, w) {
		n, err := tx.CopyFrom(ctx, pgx.Identifier{t.name}, t.columns, pgx.CopyFromRows(t.rows))
		if err != nil {
			return fmt.Errorf("seed postgres table %s: %w", t.name, err)
		}
		rows["postgres:"+t.name] = n
	}
	// COPY bypasses the sequence default, so move the sequence past the ids it loaded.
	if _, err := tx.Exec(ctx, "SELECT setval('audit_log_id_seq', (SELECT coalesce(max(id), 0) + 1 FROM audit_logs), false)"); err != nil {
		return fmt.Errorf("advance audit_log_id_seq: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit demo seed: %w", err)
	}
	return nil
}

func migratePostgres(ctx context.Context, o Options) error {
	d, err := mpg.Open(ctx, o.PostgresDSN, "", nil)
	if err != nil {
		return fmt.Errorf("demo seed: %w", err)
	}
	defer d.Close()
	return migrateUp(ctx, config.SourcePostgres, config.SourcePostgres, d, "", "")
}

type pgTable struct {
	name    string
	columns []string
	rows    [][]any
}

// postgresTables are in foreign-key order: parents before children.
func postgresTables(o Options, w *world) []pgTable {
	r := rng(o.Seed, 1<<40)
	created := o.Start.Add(-90 * 24 * time.Hour)
	users := pgTable{name: "users", columns: []string{"id", "name", "email", "email_verified", "password", "admin", "created_at", "updated_at"}}
	for i, u := range w.users {
		users.rows = append(users.rows, []any{u, fmt.Sprintf("User %d", i+1), u + "@example.com", created, "$2b$12$" + fmt.Sprintf("%x", r.Uint64()), i == 0, created, created})
	}
	orgs := pgTable{name: "organizations", columns: []string{"id", "name", "cloud_config", "created_at", "updated_at"}}
	for i, org := range w.orgs {
		orgs.rows = append(orgs.rows, []any{org, fmt.Sprintf("Organization %d", i+1), map[string]any{"plan": pick(r, []string{"Hobby", "Pro", "Team"})}, created, created})
	}
	members := pgTable{name: "organization_memberships", columns: []string{"id", "org_id", "user_id", "role", "created_at", "updated_at"}}
	for i, u := range w.users {
		org := w.orgs[i%len(w.orgs)]
		role := []string{"OWNER", "ADMIN", "MEMBER", "MEMBER", "VIEWER"}[min(i/len(w.orgs), 4)]
		members.rows = append(members.rows, []any{fmt.Sprintf("mem-%04d", i+1), org, u, role, created, created})
	}
	projects := pgTable{name: "projects", columns: []string{"id", "org_id", "name", "retention_days", "metadata", "created_at", "updated_at"}}
	keys := pgTable{name: "api_keys", columns: []string{"id", "public_key", "hashed_secret_key", "display_secret_key", "note", "project_id", "scopes", "created_at"}}
	prompts := pgTable{name: "prompts", columns: []string{"id", "project_id", "name", "version", "prompt", "labels", "tags", "created_by", "created_at"}}
	configs := pgTable{name: "score_configs", columns: []string{"id", "project_id", "name", "data_type", "min_value", "max_value", "created_at"}}
	for _, p := range w.projects {
		projects.rows = append(projects.rows, []any{p.id, p.org, p.name, 30 * (1 + r.IntN(12)), map[string]any{"team": pick(r, words)}, created, created})
		for k := 1; k <= 2; k++ {
			keys.rows = append(keys.rows, []any{fmt.Sprintf("key-%s-%d", p.id, k), fmt.Sprintf("pk-lf-%s-%d", p.id, k), fmt.Sprintf("%x%x", r.Uint64(), r.Uint64()), "sk-lf-...", "", p.id, []string{"project"}, created})
		}
		for _, name := range traceNames[:3] {
			for v := 1; v <= 3; v++ {
				labels := []string{}
				if v == 3 {
					labels = []string{"production", "latest"}
				}
				prompts.rows = append(prompts.rows, []any{fmt.Sprintf("pr-%s-%s-%d", p.id, name, v), p.id, name, v, map[string]any{"text": sentence(r, 10, 30)}, labels, []string{name}, pick(r, w.users), created})
			}
		}
		for k, name := range scoreNames {
			configs.rows = append(configs.rows, []any{fmt.Sprintf("sc-%s-%d", p.id, k), p.id, name, "NUMERIC", 0.0, 1.0, created})
		}
	}
	audit := pgTable{name: "audit_logs", columns: []string{"id", "created_at", "user_id", "org_id", "project_id", "resource_type", "resource_id", "action", "after"}}
	for i := 0; i < o.Traces/20+50; i++ {
		p := pick(r, w.projects)
		audit.rows = append(audit.rows, []any{int64(i + 1), momentIn(r, o.Start, o.Months), pick(r, w.users), p.org, p.id, "apiKey", fmt.Sprintf("key-%s-1", p.id), pick(r, []string{"create", "update", "delete"}), map[string]any{"note": sentence(r, 2, 6)}})
	}
	return []pgTable{users, orgs, members, projects, keys, prompts, configs, audit}
}
