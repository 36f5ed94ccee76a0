// The restore's preflight: before anything is written, what the target cannot take. A table
// whose schema needs an engine feature the target's version lacks is refused, named with the
// feature, its minimum version and the fix; golang-migrate's schema_migrations, dirty in the
// snapshot or at another version on the target, is warned of.

package restore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"

	"github.com/tracevault/tracevault/snapshot/clickhouse"
	"github.com/tracevault/tracevault/snapshot/progress"
	"github.com/tracevault/tracevault/snapshot/store"
)

// Finding is one thing the preflight found. A refusal ends the plan: nothing is written.
type Finding struct {
	Table   string `json:"table"`             // db.table as the snapshot names it
	Feature string `json:"feature,omitempty"` // what the table needs
	// MinVersion is the oldest ClickHouse that has Feature; TargetVersion the target's.
	MinVersion    string `json:"min_version,omitempty"`
	TargetVersion string `json:"target_version,omitempty"`
	Refuse        bool   `json:"refuse"`
	Message       string `json:"message"` // what and why, with the fix
}

// Feature is an engine feature a snapshot's table may need, found in its CREATE statement.
type Feature struct {
	Name         string
	Major, Minor int // the oldest version that creates such a table without experimental settings
	// in reports whether create, with its string literals and quoted names blanked, uses it.
	in func(create string) bool
	// has, when set, tells from the target's detected capabilities rather than its version.
	has func(clickhouse.Capabilities) bool
}

func matches(re string) func(string) bool { return regexp.MustCompile(re).MatchString }

// Features are what the preflight checks, each with the version that introduced it for
// production use (ClickHouse's changelogs): older servers refuse the CREATE, or accept it only
// with an experimental setting a restore does not set.
var Features = []Feature{
	// TYPE text(tokenizer = ...) in its current form is 25.12 (behind enable_full_text_index
	// until 26.2, where it is generally available); Langfuse v4 needs 25.12 for it.
	{Name: "text index (TYPE text)", Major: 25, Minor: 12, in: matches(`(?i)\bTYPE\s+text\b`)},
	// Persistent _block_number and _block_offset under these names, no longer experimental: 24.5.
	{Name: "block number column (enable_block_number_column)", Major: 24, Minor: 5, in: matches(`\benable_block_number_column\s*=\s*(1|true)\b`)},
	{Name: "block offset column (enable_block_offset_column)", Major: 24, Minor: 5, in: matches(`\benable_block_offset_column\s*=\s*(1|true)\b`)},
	// The JSON, Dynamic and Variant types came in 24.8, 24.5 and 24.1 behind
	// allow_experimental_*_type settings, and need none from 25.3.
	{Name: "JSON type", Major: 25, Minor: 3, in: matches(`(^|[\s(,])JSON\b`)},
	{Name: "Dynamic type", Major: 25, Minor: 3, in: matches(`(^|[\s(,])Dynamic\b`)},
	{Name: "Variant type", Major: 25, Minor: 3, in: matches(`(^|[\s(,])Variant\s*\(`)},
}

// patchParts is the feature of a table whose snapshot holds a partition with patch parts: it was
// written with lightweight updates or deletes (25.7+), which Langfuse v4 goes on writing.
var patchParts = Feature{Name: "lightweight updates (patch parts)", Major: 25, Minor: 7,
	has: func(c clickhouse.Capabilities) bool { return c.PatchParts }}

// blankQuoted replaces the contents of string literals and quoted names with spaces, so that a
// column named JSON or a comment mentioning TYPE text is not taken for the feature.
func blankQuoted(s string) string {
	b := []byte(s)
	var quote byte
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case quote == 0 && (c == '\'' || c == '`' || c == '"'):
			quote = c
		case quote != 0 && c == '\\' && i+1 < len(b):
			b[i], b[i+1] = ' ', ' '
			i++
		case quote != 0 && c == quote:
			quote = 0
		case quote != 0:
			b[i] = ' '
		}
	}
	return string(b)
}

// featuresOf lists what a table's CREATE statement and its recorded partitions need.
func featuresOf(t *clickhouse.TableRecord) []Feature {
	create := blankQuoted(t.Create)
	var out []Feature
	for _, f := range Features {
		if f.in(create) {
			out = append(out, f)
		}
	}
	if slices.ContainsFunc(t.Partitions, func(p clickhouse.PartitionRecord) bool { return len(p.Patches) > 0 }) {
		out = append(out, patchParts)
	}
	return out
}

// checkFeatures finds, for each table, the features it needs that target lacks.
func checkFeatures(tables []*clickhouse.TableRecord, target clickhouse.Capabilities) []Finding {
	var out []Finding
	for _, t := range tables {
		for _, f := range featuresOf(t) {
			ok := target.AtLeast(f.Major, f.Minor)
			if f.has != nil {
				ok = f.has(target)
			}
			if ok {
				continue
			}
			min := fmt.Sprintf("%d.%d", f.Major, f.Minor)
			out = append(out, Finding{Table: t.FullName(), Feature: f.Name, MinVersion: min, TargetVersion: target.Version, Refuse: true,
				Message: fmt.Sprintf("%s needs %s, which ClickHouse has from %s; the target runs %s. Restore it into a ClickHouse %s or newer server (upgrade the target, or point [clickhouse] addresses at one), or leave it out with --tables",
					t.FullName(), f.Name, min, target.Version, min)})
		}
	}
	return out
}

// migrationsTable is golang-migrate's version table, as migrate/clickhouse writes it.
const migrationsTable = "schema_migrations"

// Migration is a schema_migrations' current row: the one with the highest sequence.
type Migration struct {
	Version int64
	Dirty   bool
}

// checkMigrations compares each database's schema_migrations in the snapshot (snap, when it
// could be read) with the target's (live, when it holds one) and warns of a dirty snapshot and
// of a target migrated to another version: its tables then have another schema than the
// snapshot's, and a restore in place fails at them or leaves them as they are.
func checkMigrations(table, target string, snap, live *Migration, unread error) []Finding {
	var out []Finding
	if unread != nil {
		out = append(out, Finding{Table: table, Message: fmt.Sprintf("%s: the snapshot's migration version was not read (%v); compare it with the target's by hand ('tracevault migrate --target clickhouse status')", table, unread)})
	}
	if snap != nil && snap.Dirty {
		out = append(out, Finding{Table: table, Message: fmt.Sprintf("%s is dirty at version %d in the snapshot: a migration had failed half-way when it was taken, and the restore brings that schema and flag back; after restoring, repair the schema by hand and clear the flag with 'tracevault migrate force %d'", table, snap.Version, snap.Version)})
	}
	if snap != nil && live != nil && live.Version != snap.Version {
		out = append(out, Finding{Table: table, Message: fmt.Sprintf("%s: the target %s is at migration version %d, the snapshot at %d: its existing tables may have another schema than the snapshot's, and loading into them fails; migrate the target to %d first, or restore next to it with --database-map", table, target, live.Version, snap.Version, snap.Version)})
	}
	if live != nil && live.Dirty {
		out = append(out, Finding{Table: table, Message: fmt.Sprintf("%s: the target %s is dirty at migration version %d: a migration failed there half-way; repair it before restoring into it", table, target, live.Version)})
	}
	return out
}

// preflight finds what the target cannot take of the tables a plan restores, and the state of
// their schema_migrations, before the plan is made. It returns an error naming every refusal.
func (r *Restorer) preflight(ctx context.Context, m *store.Manifest, objects map[string]store.ObjectRef, tables []*clickhouse.TableRecord, plan *Plan) error {
	plan.Preflight = checkFeatures(tables, r.oldest())
	for _, t := range tables {
		if t.Name != migrationsTable {
			continue
		}
		dst := r.target(t.Database)
		snap, unread := r.snapshotMigration(ctx, t, objects)
		live, err := liveMigration(ctx, r.first, dst)
		if err != nil {
			return err
		}
		if live == nil {
			unread = nil // nothing on the target to compare with
		}
		plan.Preflight = append(plan.Preflight, checkMigrations(t.FullName(), dst, snap, live, unread)...)
	}
	var refused []string
	for _, f := range plan.Preflight {
		if f.Refuse {
			refused = append(refused, f.Message)
			continue
		}
		r.opts.Log.Warn("restore preflight", "table", f.Table, "finding", f.Message)
	}
	if len(refused) > 0 {
		return fmt.Errorf("refusing to restore snapshot %s, before writing anything: the target lacks what its tables need: %s", m.ID, strings.Join(refused, "; "))
	}
	return nil
}

// selected are the tables of sec the plan restores: those the filter and --database-map
// select. The preflight reads them before the plan is made, so that its refusal comes first.
func (r *Restorer) selected(sec *clickhouse.Section, filter clickhouse.Filter) []*clickhouse.TableRecord {
	var out []*clickhouse.TableRecord
	for i := range sec.Tables {
		t := &sec.Tables[i]
		if _, ok := r.opts.DatabaseMap[t.Database]; filter.Matches(t.Database, t.Name) && (len(r.opts.DatabaseMap) == 0 || ok) {
			out = append(out, t)
		}
	}
	return out
}

// oldest is the capabilities of the reachable replica with the oldest version: every replica
// must take the tables.
func (r *Restorer) oldest() clickhouse.Capabilities {
	c := r.first.Caps
	for _, s := range r.servers {
		if !s.Caps.AtLeast(c.Major, c.Minor) {
			c = s.Caps
		}
	}
	return c
}

// liveMigration reads db.schema_migrations' current row on srv; nil when the target has none.
func liveMigration(ctx context.Context, srv *clickhouse.Server, db string) (*Migration, error) {
	var n uint64
	if err := srv.Conn.QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = ? AND name = ?", db, migrationsTable).Scan(&n); err != nil {
		return nil, fmt.Errorf("preflight: look for %s.%s on %s: %w", db, migrationsTable, srv.Addr, err)
	}
	if n == 0 {
		return nil, nil
	}
	var rows uint64
	var m Migration
	var dirty uint8
	q := fmt.Sprintf("SELECT count(), argMax(version, sequence), argMax(dirty, sequence) FROM %s.%s", clickhouse.QuoteIdent(db), migrationsTable)
	if err := srv.Conn.QueryRow(ctx, q).Scan(&rows, &m.Version, &dirty); err != nil {
		return nil, fmt.Errorf("preflight: read %s.%s on %s: %w", db, migrationsTable, srv.Addr, err)
	}
	if rows == 0 {
		return nil, nil
	}
	m.Dirty = dirty == 1
	return &m, nil
}

// snapshotMigration reads the current row of the snapshot's schema_migrations from its objects,
// which hold a few rows. Nil, nil when the snapshot holds none.
func (r *Restorer) snapshotMigration(ctx context.Context, t *clickhouse.TableRecord, objects map[string]store.ObjectRef) (*Migration, error) {
	if len(t.Partitions) == 0 {
		return nil, nil
	}
	if r.opts.Repo == nil {
		return nil, errors.New("no repository given to the planner")
	}
	var rows []migrationRow
	for _, p := range t.Partitions {
		if p.ObjectFormat() != clickhouse.FormatNative {
			return nil, fmt.Errorf("partition %s is stored as frozen parts", p.ID)
		}
		ref, ok := objects[p.Object]
		if !ok {
			return nil, fmt.Errorf("partition %s: object %s not in the snapshot", p.ID, p.Object)
		}
		// Not the restore's own reading: kept out of its progress, whose bytes and rows are
		// the snapshot's, read once.
		obj, err := r.opts.Repo.OpenObject(progress.With(ctx, progress.Nop), ref)
		if err != nil {
			return nil, fmt.Errorf("open object %s: %w", ref.Name(), err)
		}
		got, err := readMigrationRows(obj)
		obj.Close()
		if err != nil {
			return nil, fmt.Errorf("read object %s: %w", ref.Name(), err)
		}
		rows = append(rows, got...)
	}
	if len(rows) == 0 {
		return nil, nil
	}
	last := slices.MaxFunc(rows, func(a, b migrationRow) int { return cmpU64(a.sequence, b.sequence) })
	return &Migration{Version: last.version, Dirty: last.dirty != 0}, nil
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

type migrationRow struct {
	version  int64
	dirty    uint8
	sequence uint64
}

// fixedWidth are the sizes of the column types schema_migrations may have.
var fixedWidth = map[string]int{"Int64": 8, "UInt64": 8, "UInt8": 1, "Int8": 1, "Bool": 1, "UInt32": 4, "Int32": 4, "DateTime": 4}

// readMigrationRows decodes a Native stream of schema_migrations (version Int64, dirty UInt8,
// sequence UInt64; other fixed-width columns are skipped): a few rows, so the whole stream is
// read. Blocks are: column count and row count (varints), then per column its name, type and
// rows*width little-endian bytes.
func readMigrationRows(r io.Reader) ([]migrationRow, error) {
	data, err := io.ReadAll(io.LimitReader(r, 16<<20))
	if err != nil {
		return nil, err
	}
	var out []migrationRow
	for len(data) > 0 {
		cols, n := binary.Uvarint(data)
		if n <= 0 {
			return nil, errors.New("truncated block header")
		}
		data = data[n:]
		nrows, n := binary.Uvarint(data)
		if n <= 0 || nrows > 1<<20 {
			return nil, errors.New("truncated block header")
		}
		data = data[n:]
		block := make([]migrationRow, nrows)
		found := 0
		for range cols {
			var name, typ string
			for _, s := range []*string{&name, &typ} {
				l, n := binary.Uvarint(data)
				if n <= 0 || uint64(len(data)-n) < l {
					return nil, errors.New("truncated column header")
				}
				*s, data = string(data[n:n+int(l)]), data[n+int(l):]
			}
			w, ok := fixedWidth[typ]
			if !ok {
				return nil, fmt.Errorf("column %s has type %s, not a schema_migrations column", name, typ)
			}
			if uint64(len(data)) < nrows*uint64(w) {
				return nil, fmt.Errorf("column %s: truncated", name)
			}
			col := data[:nrows*uint64(w)]
			data = data[nrows*uint64(w):]
			for i := range block {
				switch {
				case name == "version" && w == 8:
					block[i].version = int64(binary.LittleEndian.Uint64(col[i*8:]))
				case name == "dirty" && w == 1:
					block[i].dirty = col[i]
				case name == "sequence" && w == 8:
					block[i].sequence = binary.LittleEndian.Uint64(col[i*8:])
				}
			}
			if name == "version" || name == "dirty" || name == "sequence" {
				found++
			}
		}
		if found != 3 && nrows > 0 {
			return nil, errors.New("not golang-migrate's schema_migrations (version, dirty, sequence)")
		}
		out = append(out, block...)
	}
	return out, nil
}

// writePreflight prints the preflight's findings for --dry-run.
func writePreflight(w io.Writer, findings []Finding) {
	for _, f := range findings {
		kind := "warning"
		if f.Refuse {
			kind = "refused"
		}
		fmt.Fprintf(w, "preflight %s: %s\n", kind, f.Message)
	}
}

// viewNotes says, for each materialized view of the snapshot whose source the plan loads, that
// the restore does not fire it: partitions arrive by REPLACE PARTITION, which fires no view, so
// a view's target table holds what its own snapshot held, or, when the plan does not restore
// it, none of the loaded rows. That is how restoring a source and its view's target together
// fills the target exactly once.
func (r *Restorer) viewNotes(sec *clickhouse.Section, plan *Plan) []string {
	loaded, created := map[string]bool{}, map[string]bool{}
	for _, s := range plan.Steps {
		if s.table == nil {
			continue
		}
		switch s.Action {
		case ActionLoadPartition:
			loaded[s.table.FullName()] = true
		case ActionCreateTable:
			created[s.table.FullName()] = true
		}
	}
	name := func(full string) string {
		db, table, _ := strings.Cut(full, ".")
		return r.target(db) + "." + table
	}
	var out []string
	for _, t := range sec.Tables {
		if t.Engine != "MaterializedView" {
			continue
		}
		target := t.ViewTarget()
		for _, src := range t.DependsOn {
			if src == target || !loaded[src] {
				continue
			}
			what := "its rows are those of its own table in the snapshot"
			switch {
			case target != "" && created[target]:
				what = name(target) + " restored from its own snapshot"
			case target != "":
				what = name(target) + " not restored: it holds none of the rows loaded into " + name(src) + " that it did not hold already"
			}
			out = append(out, fmt.Sprintf("%s: not fired by the restore (REPLACE PARTITION) of %s; %s", name(t.FullName()), name(src), what))
		}
	}
	return out
}
