package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// scopeCase is one manifest of TestLatestNamesTheNewestFullSet, oldest first.
type scopeCase struct {
	status  string
	sources []string
	scope   *Scope // nil: a manifest from before scopes were recorded
}

func commitScoped(t *testing.T, r *Repository, cases []scopeCase) []string {
	t.Helper()
	var ids []string
	for i, c := range cases {
		m := NewManifest(nil)
		m.ID = fmt.Sprintf("20260101T00000%dZ-abcdef", i)
		m.Status, m.Scope = c.status, c.scope
		for _, s := range c.sources {
			m.Components = append(m.Components, Component{Source: s, Status: StatusComplete})
		}
		if err := r.CommitManifest(context.Background(), m); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.ID)
	}
	return ids
}

// TestLatestNamesTheNewestFullSet: with the configured sources known, "latest" is the newest
// complete set holding each of them whole, passing over newer sets narrowed by --tables or
// holding fewer sources; latest:SRC asks for the newest holding SRC whole, latest:any for any
// complete one. A manifest without a recorded scope counts as holding its sources whole.
func TestLatestNamesTheNewestFullSet(t *testing.T) {
	fs, err := NewFS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r := openRepo(t, fs, Options{})
	pgch := []string{"postgres", "clickhouse"}
	ids := commitScoped(t, r, []scopeCase{
		{StatusComplete, pgch, nil},                                                       // 0: old, full by the rule
		{StatusComplete, []string{"clickhouse"}, nil},                                     // 1: old, one source
		{StatusComplete, pgch, &Scope{Sources: pgch}},                                     // 2: full
		{StatusPartial, pgch, &Scope{Sources: pgch}},                                      // 3: partial
		{StatusComplete, []string{"clickhouse"}, &Scope{Sources: []string{"clickhouse"}}}, // 4: --only clickhouse
		{StatusComplete, []string{"clickhouse"}, &Scope{Sources: []string{"clickhouse"}, Narrowed: []string{"clickhouse"}, Tables: []string{"ux_db.*"}}}, // 5: --tables
	})
	ctx := context.Background()
	find := func(id string) string {
		t.Helper()
		m, err := r.Snapshot(ctx, id)
		if err != nil {
			return "error: " + err.Error()
		}
		return m.ID
	}
	if got := find("latest"); got != ids[5] {
		t.Errorf("unconfigured: latest = %s; want the newest complete, %s", got, ids[5])
	}
	r.SetConfigured(pgch)
	for sel, want := range map[string]string{
		"latest": ids[2], "latest:clickhouse": ids[4], "latest:postgres": ids[2], "latest:any": ids[5],
		"latest:clickhouse,postgres": ids[2],
	} {
		if got := find(sel); got != want {
			t.Errorf("%s = %s; want %s", sel, got, want)
		}
	}
	for _, sel := range []string{"latest:", "latest:Click house", "latest:any,clickhouse"} {
		if _, err := r.Snapshot(ctx, sel); err == nil || errors.Is(err, ErrNotFound) {
			t.Errorf("%s: %v; want a usage error", sel, err)
		}
	}

	// The rule for old manifests: full only if they hold every configured source.
	m0, _ := r.Snapshot(ctx, ids[0])
	m1, _ := r.Snapshot(ctx, ids[1])
	if !m0.FullScope(pgch) || m1.FullScope(pgch) || !m1.HoldsWhole("clickhouse") {
		t.Errorf("old manifests: %s full %v, %s full %v holds clickhouse %v; want true, false, true",
			ids[0], m0.FullScope(pgch), ids[1], m1.FullScope(pgch), m1.HoldsWhole("clickhouse"))
	}
	m5, _ := r.Snapshot(ctx, ids[5])
	if m5.HoldsWhole("clickhouse") || m5.DescribeScope(pgch) != "clickhouse (tables ux_db.*)" {
		t.Errorf("narrowed set: holds clickhouse whole %v, described %q", m5.HoldsWhole("clickhouse"), m5.DescribeScope(pgch))
	}
	m4, _ := r.Snapshot(ctx, ids[4])
	if d := m4.DescribeScope(pgch); d != "clickhouse only" {
		t.Errorf("--only clickhouse described %q", d)
	}
	m2, _ := r.Snapshot(ctx, ids[2])
	if d := m2.DescribeScope(pgch); d != "full" {
		t.Errorf("full set described %q", d)
	}

	// A source the set lacks: the error names the newest set that holds it whole.
	err = r.RequireSource(ctx, m5, "postgres")
	if !errors.Is(err, ErrNotHeld) || !strings.Contains(err.Error(), "holding it whole is "+ids[2]) {
		t.Errorf("RequireSource(%s, postgres) = %v; want ErrNotHeld naming %s", ids[5], err, ids[2])
	}
	if err := r.RequireSource(ctx, m5, "clickhouse"); err != nil {
		t.Errorf("RequireSource(%s, clickhouse) = %v; it holds part of it", ids[5], err)
	}
}

// TestLatestWithoutAFullSetNamesTheSetsThereAre: when no set is full, "latest" fails with
// ErrNoSuchScope (not ErrNotFound: the repository is not empty), naming the newest complete
// set and, per source, the newest holding it whole or in part.
func TestLatestWithoutAFullSetNamesTheSetsThereAre(t *testing.T) {
	fs, err := NewFS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r := openRepo(t, fs, Options{})
	r.SetConfigured([]string{"postgres", "clickhouse", "zookeeper"})
	ids := commitScoped(t, r, []scopeCase{
		{StatusComplete, []string{"postgres"}, &Scope{Sources: []string{"postgres"}}},
		{StatusComplete, []string{"clickhouse"}, &Scope{Sources: []string{"clickhouse"}, Narrowed: []string{"clickhouse"}, Tables: []string{"default.traces"}}},
	})
	_, err = r.Snapshot(context.Background(), "latest")
	if !errors.Is(err, ErrNoSuchScope) || errors.Is(err, ErrNotFound) {
		t.Fatalf("latest = %v; want ErrNoSuchScope", err)
	}
	for _, want := range []string{
		"the newest complete snapshot, " + ids[1] + ", holds clickhouse (tables default.traces)",
		"the newest holding postgres whole is " + ids[0],
		"none holds clickhouse whole; the newest holding part of it is " + ids[1],
		"no complete snapshot holds zookeeper",
		"latest:any",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("latest error lacks %q:\n%v", want, err)
		}
	}
}
