package pitr

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tracevault/tracevault/snapshot"
	"github.com/tracevault/tracevault/snapshot/postgres"
	"github.com/tracevault/tracevault/snapshot/store"
)

// newChain creates the publication and the slot, takes the base in the slot's exported snapshot
// and records the chain.
func (s *Streamer) newChain(ctx context.Context, repo *store.Repository, aux *pgx.Conn, repl *pgconn.PgConn, db string) (*Chain, error) {
	if err := s.preparePublication(ctx, aux); err != nil {
		return nil, err
	}
	if err := dropSlot(ctx, aux, s.Slot); err != nil {
		return nil, fmt.Errorf("%w; a slot of that name is in use: is another tracevault streaming? ([postgres] pitr_slot names it)", err)
	}
	// Read before the slot exists, so every transaction committed before it is in the slot's
	// snapshot: the base's cut.
	var before time.Time
	if err := aux.QueryRow(ctx, "SELECT clock_timestamp()").Scan(&before); err != nil {
		return nil, postgres.Explain("read the server clock", err)
	}
	res, err := pglogrepl.CreateReplicationSlot(ctx, repl, s.Slot, "pgoutput",
		pglogrepl.CreateReplicationSlotOptions{Mode: pglogrepl.LogicalReplication, SnapshotAction: "EXPORT_SNAPSHOT"})
	if err != nil {
		return nil, postgres.Explain("create replication slot "+s.Slot+" (needs wal_level = logical and a free max_replication_slots)", err)
	}
	start, err := ParseLSN(res.ConsistentPoint)
	if err != nil {
		return nil, err
	}
	chain := &Chain{ID: newChainID(time.Now(), start), Database: db, Slot: s.Slot, Publication: s.Publication,
		Schemas: s.Schemas, StartLSN: start}
	ok := false
	defer func() {
		if !ok {
			_ = dropSlot(context.WithoutCancel(ctx), aux, s.Slot)
		}
	}()
	if err := aux.QueryRow(ctx, "SELECT clock_timestamp()").Scan(&chain.BaseTime); err != nil {
		return nil, postgres.Explain("read the server clock", err)
	}
	chain.BaseTime = chain.BaseTime.UTC()
	if chain.Relations, err = s.relations(ctx, res.SnapshotName); err != nil {
		return nil, err
	}
	src := s.Base
	src.DSN, src.Schemas, src.Log = s.DSN, s.Schemas, s.Log
	src.Slot, src.SlotSnapshot, src.SlotLSN, src.SlotTime = s.Slot, res.SnapshotName, start.String(), before.UTC()
	s.Log.Info("point-in-time recovery: taking a base snapshot bound to the slot", "slot", s.Slot, "lsn", start)
	m, err := snapshot.Run(ctx, repo, []snapshot.Source{&src}, snapshot.Options{Tags: append(slices.Clone(s.Tags), store.TagPITRBase), Log: s.Log})
	if err != nil {
		return nil, fmt.Errorf("point-in-time recovery: base snapshot: %w", err)
	}
	chain.Base, chain.Created = m.ID, time.Now().UTC()
	if err := putRecord(ctx, repo, chainName(chain.ID), chain); err != nil {
		return nil, fmt.Errorf("record chain %s: %w", chain.ID, err)
	}
	ok = true
	s.Log.Info("point-in-time recovery: new chain", "chain", chain.ID, "base", m.ID, "lsn", start)
	s.update(func(st *State) {
		st.Chain, st.RecoveryPoint, st.DurableLSN, st.Broken = chain.ID, chain.BaseTime, start, ""
	})
	return chain, nil
}

// preparePublication publishes the schemas, and gives tables with no replica identity a full
// one: without it the server refuses their UPDATE and DELETE once they are published.
func (s *Streamer) preparePublication(ctx context.Context, aux *pgx.Conn) error {
	schemas := make([]string, len(s.Schemas))
	for i, n := range s.Schemas {
		schemas[i] = postgres.Ident(n)
	}
	var exists bool
	if err := aux.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)", s.Publication).Scan(&exists); err != nil {
		return postgres.Explain("read publications", err)
	}
	verb := "CREATE PUBLICATION " + postgres.Ident(s.Publication) + " FOR"
	if exists {
		verb = "ALTER PUBLICATION " + postgres.Ident(s.Publication) + " SET"
	}
	if _, err := aux.Exec(ctx, verb+" TABLES IN SCHEMA "+strings.Join(schemas, ", ")); err != nil {
		return postgres.Explain("publish schemas "+strings.Join(s.Schemas, ", ")+" (PostgreSQL 15+; FOR TABLES IN SCHEMA needs a superuser, on Azure a member of azure_pg_admin)", err)
	}
	rows, err := aux.Query(ctx, `SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind = 'r' AND n.nspname = ANY($1) AND (c.relreplident = 'n' OR (c.relreplident = 'd'
		AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)))`, s.Schemas)
	if err != nil {
		return postgres.Explain("list tables without a replica identity", err)
	}
	names, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
		var n, t string
		err := r.Scan(&n, &t)
		return postgres.Ident(n, t), err
	})
	if err != nil {
		return postgres.Explain("list tables without a replica identity", err)
	}
	for _, t := range names {
		s.Log.Warn("point-in-time recovery: table has no primary key; setting REPLICA IDENTITY FULL so its updates and deletes can be streamed", "table", t)
		if _, err := aux.Exec(ctx, "ALTER TABLE "+t+" REPLICA IDENTITY FULL"); err != nil {
			return postgres.Explain("set REPLICA IDENTITY FULL on "+t, err)
		}
	}
	return nil
}

// relations reads the published tables' columns in the slot's snapshot: what the base holds.
func (s *Streamer) relations(ctx context.Context, snap string) ([]Relation, error) {
	conn, err := postgres.Connect(ctx, s.DSN)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, postgres.Explain("begin reading the published tables", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, "SET TRANSACTION SNAPSHOT '"+snap+"'"); err != nil {
		return nil, postgres.Explain("import the slot's snapshot", err)
	}
	rows, err := tx.Query(ctx, `SELECT c.oid, n.nspname, c.relname, a.attname, a.atttypid, a.atttypmod
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
		WHERE c.relkind = 'r' AND n.nspname = ANY($1) ORDER BY c.oid, a.attnum`, s.Schemas)
	if err != nil {
		return nil, postgres.Explain("read the published tables' columns", err)
	}
	defer rows.Close()
	var out []Relation
	for rows.Next() {
		var oid, typ uint32
		var schema, name, col string
		var mod int32
		if err := rows.Scan(&oid, &schema, &name, &col, &typ, &mod); err != nil {
			return nil, postgres.Explain("read the published tables' columns", err)
		}
		if len(out) == 0 || out[len(out)-1].OID != oid {
			out = append(out, Relation{OID: oid, Schema: schema, Name: name})
		}
		r := &out[len(out)-1]
		r.Columns = append(r.Columns, RelColumn{Name: col, Type: typ, TypeMod: mod})
	}
	return out, postgres.Explain("read the published tables' columns", rows.Err())
}

// schemaChange says how rel differs from the base's table, or "" if it does not.
func schemaChange(base []Relation, rel Relation) string {
	for _, b := range base {
		if b.OID != rel.OID {
			continue
		}
		if b.Schema != rel.Schema || b.Name != rel.Name {
			return fmt.Sprintf("table %s.%s was renamed to %s.%s", b.Schema, b.Name, rel.Schema, rel.Name)
		}
		describe := func(cs []RelColumn) string {
			parts := make([]string, len(cs))
			for i, c := range cs {
				parts[i] = fmt.Sprintf("%s:%d:%d", c.Name, c.Type, c.TypeMod)
			}
			return strings.Join(parts, ",")
		}
		if was, is := describe(b.Columns), describe(rel.Columns); was != is {
			return fmt.Sprintf("table %s.%s changed columns (name:type:typmod) from [%s] to [%s]", rel.Schema, rel.Name, was, is)
		}
		return ""
	}
	return fmt.Sprintf("table %s.%s is new since the base", rel.Schema, rel.Name)
}
