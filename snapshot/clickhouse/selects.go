package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// ErrSelectsNothing means a backup's table filter selects no table: a typo, or a database with
// no table in it. A snapshot of it would hold nothing and still read "complete".
var ErrSelectsNothing = errors.New("selects no table")

// ErrNoRows means the tables a backup selects hold no row on any replica that answered: a
// snapshot of them would hold their definitions only.
var ErrNoRows = errors.New("no row")

// CheckSelection fails, naming them, when any of require's db.table globs selects no table of
// the source's cluster within its filter's databases and exclusions: each glob an operator
// typed must select something, as a restore's filters must. With needRows it also fails when
// what the filter selects holds no row on any replica (ErrNoRows). It runs before the set
// starts, so a refusal records nothing. Replicas that do not answer are left out; when none
// does, it leaves the failure to the backup, which records it.
func CheckSelection(ctx context.Context, s *Source, require []string, needRows bool) error {
	if len(require) == 0 && !needRows {
		return nil
	}
	var servers []*Server
	for _, addr := range s.Native {
		if srv, err := Dial(ctx, addr, s.Conn); err == nil {
			servers = append(servers, srv)
			defer srv.Close()
			if !needRows {
				break
			}
		}
	}
	if len(servers) == 0 {
		return nil
	}
	tables, err := tableNames(ctx, servers[0])
	if err != nil {
		return err
	}
	if err := unselected(require, s.Filter, tables, servers[0].Addr); err != nil || !needRows {
		return err
	}
	var selected []string
	for _, t := range tables {
		if s.Filter.Matches(t[0], t[1]) {
			selected = append(selected, t[0]+"."+t[1])
		}
	}
	for _, srv := range servers {
		rows, err := selectedRows(ctx, srv, s.Filter)
		if err != nil || rows > 0 {
			return err
		}
	}
	what := "no table"
	if len(selected) > 0 {
		what = "tables " + strings.Join(selected, ", ")
	}
	return fmt.Errorf("%w in databases %s (%s) on any replica that answered", ErrNoRows, strings.Join(s.Filter.Databases, ","), what)
}

// selectedRows sums the rows of the active parts of the tables f selects on one server.
func selectedRows(ctx context.Context, srv *Server, f Filter) (uint64, error) {
	rows, err := srv.Conn.Query(ctx, "SELECT database, table, sum(rows) FROM system.parts WHERE active GROUP BY database, table")
	if err != nil {
		return 0, fmt.Errorf("count rows on %s: %w", srv.Addr, err)
	}
	defer rows.Close()
	var total uint64
	for rows.Next() {
		var db, table string
		var n uint64
		if err := rows.Scan(&db, &table, &n); err != nil {
			return 0, fmt.Errorf("count rows on %s: %w", srv.Addr, err)
		}
		if f.Matches(db, table) {
			total += n
		}
	}
	return total, rows.Err()
}

// unselected is CheckSelection's pure part: tables are "db.table" names.
func unselected(require []string, f Filter, tables [][2]string, addr string) error {
	var none []string
	var inDatabases []string // what the filter's databases hold, for a typo
	for _, t := range tables {
		if (Filter{Databases: f.Databases, Exclude: f.Exclude}).Matches(t[0], t[1]) {
			inDatabases = append(inDatabases, t[0]+"."+t[1])
		}
	}
	for _, g := range require {
		selected := false
		for _, t := range tables {
			if (Filter{Databases: f.Databases, Include: []string{g}, Exclude: f.Exclude}).Matches(t[0], t[1]) {
				selected = true
				break
			}
		}
		if !selected {
			none = append(none, g)
		}
	}
	if len(none) == 0 {
		return nil
	}
	dbs := strings.Join(f.Databases, ",")
	if dbs == "" {
		dbs = "none"
	}
	held := "none"
	if len(inDatabases) > 0 {
		const shown = 12
		held = strings.Join(inDatabases[:min(shown, len(inDatabases))], ", ")
		if len(inDatabases) > shown {
			held += fmt.Sprintf(" and %d more", len(inDatabases)-shown)
		}
	}
	return fmt.Errorf("table filter %s %w on %s within databases %s (tables there: %s): a snapshot would hold nothing of it, so none is taken; check the db.table names",
		strings.Join(none, ","), ErrSelectsNothing, addr, dbs, held)
}

// tableNames lists a server's tables as database and name.
func tableNames(ctx context.Context, s *Server) ([][2]string, error) {
	rows, err := s.Conn.Query(ctx, "SELECT database, name FROM system.tables WHERE NOT is_temporary ORDER BY database, name")
	if err != nil {
		return nil, fmt.Errorf("list tables on %s: %w", s.Addr, err)
	}
	defer rows.Close()
	var out [][2]string
	for rows.Next() {
		var db, name string
		if err := rows.Scan(&db, &name); err != nil {
			return nil, fmt.Errorf("list tables on %s: %w", s.Addr, err)
		}
		out = append(out, [2]string{db, name})
	}
	return out, rows.Err()
}
