package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Column is one copied column.
type Column struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// Table is one relation of the selected schemas as the snapshot saw it.
type Table struct {
	Schema string `json:"schema"`
	Name   string `json:"name"`
	// Kind is "table", "partition" (a leaf, copied like a table) or "partitioned" (a parent
	// that holds no rows itself; its partitions are listed on their own).
	Kind     string   `json:"kind"`
	Parent   string   `json:"parent,omitempty"` // schema.table of a partition's parent
	Unlogged bool     `json:"unlogged,omitempty"`
	Columns  []Column `json:"columns"`

	oid       uint32
	sizeBytes int64
}

// FullName is schema.table, unquoted, as --tables globs match it.
func (t Table) FullName() string { return t.Schema + "." + t.Name }

// Sequence is a sequence's value when the snapshot was taken.
type Sequence struct {
	Schema    string `json:"schema"`
	Name      string `json:"name"`
	LastValue int64  `json:"last_value"`
	IsCalled  bool   `json:"is_called"`
}

// Extension is an installed extension.
type Extension struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Schema  string `json:"schema"`
}

// ForeignKey ties a child table's columns to its parent's, for per-table restores.
type ForeignKey struct {
	Name          string
	Child, Parent Table // Schema and Name only
	ChildColumns  []string
	ParentColumns []string
}

// DatabaseInfo is what CREATE DATABASE needs to recreate the database alike.
type DatabaseInfo struct {
	Name     string `json:"name"`
	Encoding string `json:"encoding"`
	Collate  string `json:"collate"`
	Ctype    string `json:"ctype"`
}

const (
	kindTable       = "table"
	kindPartition   = "partition"
	kindPartitioned = "partitioned"
)

// querier is a connection or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// catalogReader reads the catalog: the source's inside the coordinator's snapshot, the
// target's before a per-table restore.
type catalogReader struct {
	q       querier
	schemas []string
}

func (c catalogReader) database(ctx context.Context) (DatabaseInfo, error) {
	var d DatabaseInfo
	err := c.q.QueryRow(ctx, `SELECT datname, pg_encoding_to_char(encoding), datcollate, datctype
		FROM pg_database WHERE datname = current_database()`).Scan(&d.Name, &d.Encoding, &d.Collate, &d.Ctype)
	if err != nil {
		return d, fmt.Errorf("read database settings: %w", err)
	}
	return d, nil
}

// tables lists every table and partition of the selected schemas, largest first, so the
// workers start on the long copies and finish together.
func (c catalogReader) tables(ctx context.Context) ([]Table, error) {
	rows, err := c.q.Query(ctx, `
		SELECT c.oid, n.nspname, c.relname, c.relkind = 'p', c.relispartition, c.relpersistence = 'u',
		       coalesce(pn.nspname || '.' || pc.relname, ''), coalesce(pg_table_size(c.oid), 0)
		FROM pg_class c
		JOIN pg_namespace n ON n.oid = c.relnamespace
		LEFT JOIN pg_inherits i ON c.relispartition AND i.inhrelid = c.oid
		LEFT JOIN pg_class pc ON pc.oid = i.inhparent
		LEFT JOIN pg_namespace pn ON pn.oid = pc.relnamespace
		WHERE c.relkind IN ('r', 'p') AND n.nspname = ANY($1)
		ORDER BY 8 DESC, 2, 3`, c.schemas)
	if err != nil {
		return nil, fmt.Errorf("list tables of schemas %v: %w", c.schemas, err)
	}
	var out []Table
	for rows.Next() {
		var t Table
		var partitioned, partition bool
		if err := rows.Scan(&t.oid, &t.Schema, &t.Name, &partitioned, &partition, &t.Unlogged, &t.Parent, &t.sizeBytes); err != nil {
			return nil, fmt.Errorf("list tables: %w", err)
		}
		switch {
		case partitioned:
			t.Kind = kindPartitioned
		case partition:
			t.Kind = kindPartition
		default:
			t.Kind = kindTable
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	for i := range out {
		if out[i].Columns, err = c.columns(ctx, out[i].oid); err != nil {
			return nil, fmt.Errorf("read columns of %s: %w", out[i].FullName(), err)
		}
	}
	return out, nil
}

// columns are the stored columns in order; generated columns are recomputed on load and COPY
// refuses them in a column list.
func (c catalogReader) columns(ctx context.Context, oid uint32) ([]Column, error) {
	rows, err := c.q.Query(ctx, `SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
		WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped AND attgenerated = '' ORDER BY attnum`, oid)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Column, error) {
		var col Column
		err := r.Scan(&col.Name, &col.Type)
		return col, err
	})
}

// missingSchemas are the selected schemas the database does not have: a typo in
// [postgres] schemas must not pass for an empty backup.
func (c catalogReader) missingSchemas(ctx context.Context) ([]string, error) {
	rows, err := c.q.Query(ctx, `SELECT s FROM unnest($1::text[]) s WHERE s NOT IN (SELECT nspname FROM pg_namespace)`, c.schemas)
	if err != nil {
		return nil, fmt.Errorf("check schemas %v: %w", c.schemas, err)
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// excludedSchemas are the user schemas pg_dump must leave out.
func (c catalogReader) excludedSchemas(ctx context.Context) ([]string, error) {
	rows, err := c.q.Query(ctx, `SELECT nspname FROM pg_namespace
		WHERE NOT nspname = ANY($1) AND nspname NOT IN ('pg_catalog', 'information_schema')
		  AND nspname NOT LIKE 'pg\_toast%' AND nspname NOT LIKE 'pg\_temp\_%' ORDER BY 1`, c.schemas)
	if err != nil {
		return nil, fmt.Errorf("list schemas: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// sequences reads every sequence's value. Sequences are not transactional, so like pg_dump
// this is the value when read, not as of the snapshot: never lower than any id in the copied
// rows, which is what a restore needs.
func (c catalogReader) sequences(ctx context.Context) ([]Sequence, error) {
	rows, err := c.q.Query(ctx, `SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind = 'S' AND n.nspname = ANY($1) ORDER BY 1, 2`, c.schemas)
	if err != nil {
		return nil, fmt.Errorf("list sequences: %w", err)
	}
	seqs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Sequence, error) {
		var s Sequence
		err := r.Scan(&s.Schema, &s.Name)
		return s, err
	})
	if err != nil {
		return nil, fmt.Errorf("list sequences: %w", err)
	}
	for i := range seqs {
		s := &seqs[i]
		if err := c.q.QueryRow(ctx, "SELECT last_value, is_called FROM "+Ident(s.Schema, s.Name)).Scan(&s.LastValue, &s.IsCalled); err != nil {
			return nil, fmt.Errorf("read sequence %s.%s: %w", s.Schema, s.Name, err)
		}
	}
	return seqs, nil
}

// roles are the roles the schema names as owners or grantees: a restore needs them to exist.
func (c catalogReader) roles(ctx context.Context) ([]string, error) {
	rows, err := c.q.Query(ctx, `
		WITH ns AS (SELECT oid, nspowner, nspacl FROM pg_namespace WHERE nspname = ANY($1)),
		used AS (
			SELECT nspowner AS r FROM ns
			UNION SELECT (aclexplode(nspacl)).grantee FROM ns WHERE nspacl IS NOT NULL
			UNION SELECT relowner FROM pg_class WHERE relnamespace IN (SELECT oid FROM ns)
			UNION SELECT (aclexplode(relacl)).grantee FROM pg_class WHERE relnamespace IN (SELECT oid FROM ns) AND relacl IS NOT NULL
			UNION SELECT typowner FROM pg_type WHERE typnamespace IN (SELECT oid FROM ns)
			UNION SELECT proowner FROM pg_proc WHERE pronamespace IN (SELECT oid FROM ns)
		)
		SELECT rolname FROM pg_roles WHERE oid IN (SELECT r FROM used) ORDER BY 1`, c.schemas)
	if err != nil {
		return nil, fmt.Errorf("list roles used by the schema: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

func (c catalogReader) extensions(ctx context.Context) ([]Extension, error) {
	rows, err := c.q.Query(ctx, `SELECT e.extname, e.extversion, n.nspname FROM pg_extension e
		JOIN pg_namespace n ON n.oid = e.extnamespace ORDER BY 1`)
	if err != nil {
		return nil, fmt.Errorf("list extensions: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Extension, error) {
		var e Extension
		err := r.Scan(&e.Name, &e.Version, &e.Schema)
		return e, err
	})
}

func (c catalogReader) foreignKeys(ctx context.Context) ([]ForeignKey, error) {
	rows, err := c.q.Query(ctx, `SELECT con.conname, cn.nspname, cc.relname, pn.nspname, pc.relname,
		  array(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(n, i)
		        JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n ORDER BY k.i),
		  array(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(n, i)
		        JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n ORDER BY k.i)
		FROM pg_constraint con
		JOIN pg_class cc ON cc.oid = con.conrelid JOIN pg_namespace cn ON cn.oid = cc.relnamespace
		JOIN pg_class pc ON pc.oid = con.confrelid JOIN pg_namespace pn ON pn.oid = pc.relnamespace
		WHERE con.contype = 'f' AND con.conparentid = 0 AND (cn.nspname = ANY($1) OR pn.nspname = ANY($1)) ORDER BY 2, 3, 1`, c.schemas)
	if err != nil {
		return nil, fmt.Errorf("list foreign keys: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (ForeignKey, error) {
		var f ForeignKey
		err := r.Scan(&f.Name, &f.Child.Schema, &f.Child.Name, &f.Parent.Schema, &f.Parent.Name, &f.ChildColumns, &f.ParentColumns)
		return f, err
	})
}

func (c catalogReader) largeObjects(ctx context.Context) (int64, error) {
	var n int64
	if err := c.q.QueryRow(ctx, "SELECT count(*) FROM pg_largeobject_metadata").Scan(&n); err != nil {
		return 0, fmt.Errorf("count large objects: %w", err)
	}
	return n, nil
}
