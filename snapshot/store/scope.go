package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Scope is what a snapshot set was asked to hold: its sources, and where a request narrowed one
// below what the configuration covers (backup --tables, a migration's snapshot of one database),
// which. A set that holds each source the configuration covers, none narrowed, is a full set:
// the only kind "latest", freshness, the recovery point and the default drill count.
//
// Manifests from before the scope was recorded have none (nil): each source they hold counts as
// held whole, so such a set is full if it holds every source the configuration covers.
type Scope struct {
	// Sources are the sources the set ran: every configured one, or --only's.
	Sources []string `json:"sources"`
	// Narrowed names the sources the request held only in part; a narrowed source never counts
	// as backed up whole.
	Narrowed []string `json:"narrowed,omitempty"`
	// Databases, Tables and Exclude are ClickHouse's selection as the set applied it: database
	// globs, db.table globs and the excluded db.table globs ([clickhouse] databases,
	// include_tables and exclude_tables, or the request's in their place).
	Databases []string `json:"databases,omitempty"`
	Tables    []string `json:"tables,omitempty"`
	Exclude   []string `json:"exclude,omitempty"`
	// PostgresDatabase is the PostgreSQL database held, where a request chose another than
	// [postgres] dsn's (migrate --database).
	PostgresDatabase string `json:"postgres_database,omitempty"`
}

// narrowed reports whether the scope holds source only in part.
func (s *Scope) narrowed(source string) bool {
	return s != nil && slices.Contains(s.Narrowed, source)
}

// HoldsWhole reports whether the snapshot holds source whole: the source's component completed
// and no request narrowed it. A partial set may hold some sources whole.
func (m *Manifest) HoldsWhole(source string) bool {
	if m.Scope.narrowed(source) {
		return false
	}
	for _, c := range m.Components {
		if c.Source == source && c.Status == StatusComplete {
			return true
		}
	}
	return false
}

// FullScope reports whether the snapshot is a complete set holding every one of sources (what
// the configuration covers) whole, and no source narrowed.
func (m *Manifest) FullScope(sources []string) bool {
	if m.Status != StatusComplete || (m.Scope != nil && len(m.Scope.Narrowed) > 0) {
		return false
	}
	for _, s := range sources {
		if !m.HoldsWhole(s) {
			return false
		}
	}
	return true
}

// DescribeScope says in a few words what the set holds, against the sources the configuration
// covers: "full" for a full set, else each source it holds, with the narrowing of a narrowed
// one, e.g. "clickhouse (tables ux_db.*)" or "clickhouse only".
func (m *Manifest) DescribeScope(covered []string) string {
	if len(covered) > 0 && m.FullScope(covered) {
		return "full"
	}
	var parts []string
	whole := 0
	for _, src := range m.Sources() {
		switch {
		case m.Scope.narrowed(src):
			parts = append(parts, src+" ("+m.Scope.narrowing(src)+")")
		default:
			whole++
			parts = append(parts, src)
		}
	}
	if len(parts) == 0 {
		return "nothing"
	}
	text := strings.Join(parts, ", ")
	if whole == len(parts) && len(covered) > 0 && m.Status == StatusComplete {
		text += " only"
	}
	return text
}

// ScopeDetail is DescribeScope with the ClickHouse selection the set applied and whether
// "latest" can name it, for show and the snapshot's page.
func (m *Manifest) ScopeDetail(covered []string) string {
	line := m.DescribeScope(covered)
	if sc := m.Scope; sc != nil && slices.Contains(sc.Sources, "clickhouse") {
		line += fmt.Sprintf("; clickhouse databases %s, tables %s", orAll(sc.Databases), orAll(sc.Tables))
		if len(sc.Exclude) > 0 {
			line += ", excluding " + strings.Join(sc.Exclude, ",")
		}
	}
	switch {
	case m.Scope == nil:
		line += " (recorded before scopes were: each source it holds counts as whole)"
	case !m.FullScope(covered):
		line += "; not a full set: 'latest' passes over it"
	}
	return line
}

func orAll(globs []string) string {
	if len(globs) == 0 {
		return "*"
	}
	return strings.Join(globs, ",")
}

// narrowing says how a narrowed source was narrowed.
func (s *Scope) narrowing(source string) string {
	var what []string
	switch {
	case source == "clickhouse":
		if len(s.Tables) > 0 {
			what = append(what, "tables "+strings.Join(s.Tables, ","))
		}
		if len(s.Databases) > 0 && !slices.Equal(s.Databases, []string{"*"}) {
			what = append(what, "databases "+strings.Join(s.Databases, ","))
		}
		if len(s.Exclude) > 0 {
			what = append(what, "excluding "+strings.Join(s.Exclude, ","))
		}
	case source == "postgres" && s.PostgresDatabase != "":
		what = append(what, "database "+s.PostgresDatabase)
	}
	if len(what) == 0 {
		return "in part"
	}
	return strings.Join(what, "; ")
}

// SetConfigured tells the repository which sources the configuration covers: from then on
// "latest" is the newest complete set holding each of them whole (FullScope). Unset, "latest"
// is the newest complete set of any scope. Call it before the repository is shared.
func (r *Repository) SetConfigured(sources []string) {
	r.configured = slices.Clone(sources)
}

// Configured returns the sources SetConfigured recorded.
func (r *Repository) Configured() []string { return slices.Clone(r.configured) }

// latestSelector is what a "latest" id asks for: "latest" a full set (the configured sources,
// each whole); "latest:SRC[,SRC]" the newest complete set holding those sources whole, of
// any scope otherwise; "latest:any" the newest complete set of any scope.
type latestSelector struct {
	text    string
	sources []string // held whole; empty with any
	any     bool
}

// parseLatest reads a "latest" id; ok is false for any other id.
func (r *Repository) parseLatest(id string) (sel latestSelector, ok bool, err error) {
	rest, found := strings.CutPrefix(id, "latest")
	if !found || (rest != "" && rest[0] != ':') {
		return sel, false, nil
	}
	sel.text = id
	if rest == "" {
		sel.sources = r.configured
		sel.any = len(r.configured) == 0
		return sel, true, nil
	}
	for _, s := range strings.Split(rest[1:], ",") {
		switch s = strings.TrimSpace(s); {
		case s == "any":
			sel.any = true
		case s == "" || !validSourceName(s):
			return sel, true, fmt.Errorf("snapshot %q: write latest, latest:SOURCE[,SOURCE] (e.g. latest:clickhouse) or latest:any", id)
		default:
			sel.sources = append(sel.sources, s)
		}
	}
	if sel.any && len(sel.sources) > 0 {
		return sel, true, fmt.Errorf("snapshot %q: latest:any takes no sources beside it", id)
	}
	return sel, true, nil
}

func validSourceName(s string) bool {
	for _, c := range s {
		if (c < 'a' || c > 'z') && c != '-' && c != '_' {
			return false
		}
	}
	return true
}

// matches reports whether m is what the selector asks for.
func (sel latestSelector) matches(m *Manifest) bool {
	if m.Status != StatusComplete {
		return false
	}
	return sel.any || m.FullScope(sel.sources)
}

// what says what the selector asks for, for an error.
func (sel latestSelector) what() string {
	if sel.any {
		return "complete snapshot"
	}
	return "complete snapshot holds each of " + strings.Join(sel.sources, ", ") + " whole"
}

// ErrNoSuchScope means that complete snapshots exist, but none of the scope a "latest" asked
// for: not ErrNotFound, so that no caller mistakes it for an empty or all-partial repository.
var ErrNoSuchScope = errors.New("no snapshot of that scope")

// errNoLatest explains why no set answers sel, newest first: what the newest complete set
// holds, and for each source asked for, the newest set holding it whole, or failing that in
// part, so that the operator can name one by id or ask for less.
func errNoLatest(sel latestSelector, all []Manifest, where fmt.Stringer, damaged string) error {
	var newestComplete *Manifest
	for i := len(all) - 1; i >= 0; i-- {
		if all[i].Status == StatusComplete {
			newestComplete = &all[i]
			break
		}
	}
	switch {
	case len(all) == 0:
		return fmt.Errorf("snapshot %s: %w: %s holds no snapshot yet; take one with 'tracevault backup'%s", sel.text, ErrNotFound, where, damaged)
	case newestComplete == nil:
		newest := all[len(all)-1]
		return fmt.Errorf("snapshot %s: %w: no snapshot is complete; the newest is %s, %s (%s): restore it by id if that part is enough%s",
			sel.text, ErrNotFound, newest.ID, newest.Status, newest.Error, damaged)
	}
	var hints []string
	for _, src := range sel.sources {
		var whole, part *Manifest
		for i := len(all) - 1; i >= 0 && whole == nil; i-- {
			m := &all[i]
			if m.Status != StatusComplete {
				continue
			}
			switch {
			case m.HoldsWhole(src):
				whole = m
			case part == nil && slices.Contains(m.Sources(), src):
				part = m
			}
		}
		switch {
		case whole != nil:
			hints = append(hints, fmt.Sprintf("the newest holding %s whole is %s (latest:%s)", src, whole.ID, src))
		case part != nil:
			hints = append(hints, fmt.Sprintf("none holds %s whole; the newest holding part of it is %s (%s)", src, part.ID, part.DescribeScope(nil)))
		default:
			hints = append(hints, "no complete snapshot holds "+src)
		}
	}
	return fmt.Errorf("snapshot %s: %w: no %s; the newest complete snapshot, %s, holds %s; %s. Name a snapshot by id, ask for less (latest:SOURCE) or for any scope (latest:any), or take a full one with 'tracevault backup'%s",
		sel.text, ErrNoSuchScope, sel.what(), newestComplete.ID, newestComplete.DescribeScope(sel.sources), strings.Join(hints, "; "), damaged)
}

// ErrNotHeld means a snapshot holds no part of a source an operation needs.
var ErrNotHeld = errors.New("not held")

// RequireSource fails when m holds no part of source, naming the newest complete snapshot that
// holds it whole, so that an operator restoring one source learns which set to name instead.
func (r *Repository) RequireSource(ctx context.Context, m *Manifest, source string) error {
	if slices.Contains(m.Sources(), source) {
		return nil
	}
	instead := "no complete snapshot holds it whole; take one with 'tracevault backup --only " + source + "'"
	if other, err := r.Snapshot(ctx, "latest:"+source); err == nil {
		instead = fmt.Sprintf("the newest complete snapshot holding it whole is %s (latest:%s)", other.ID, source)
	}
	return fmt.Errorf("snapshot %s holds no %s (%w): it holds %s; %s", m.ID, source, ErrNotHeld, m.DescribeScope(r.configured), instead)
}
