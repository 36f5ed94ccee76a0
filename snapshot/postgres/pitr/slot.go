package pitr

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tracevault/tracevault/snapshot/postgres"
)

func replicationConn(ctx context.Context, dsn, workMem string) (*pgconn.PgConn, error) {
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("parse [postgres] dsn for replication: %w", err)
	}
	cfg.RuntimeParams["replication"] = "database"
	// Values arrive in text form: fix the formats a replay must read back.
	cfg.RuntimeParams["datestyle"] = "ISO, MDY"
	cfg.RuntimeParams["intervalstyle"] = "postgres"
	cfg.RuntimeParams["extra_float_digits"] = "1"
	if workMem != "" {
		cfg.RuntimeParams["logical_decoding_work_mem"] = workMem
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 15 * time.Second
	}
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, postgres.Explain(fmt.Sprintf("open a replication connection to %s:%d as %s (needs the REPLICATION attribute, or azure_pg_admin on Azure, and a replication line in pg_hba.conf)", cfg.Host, cfg.Port, cfg.User), err)
	}
	return conn, nil
}

func slotStatus(ctx context.Context, conn *pgx.Conn, slot string) (string, error) {
	var status *string
	err := conn.QueryRow(ctx, "SELECT coalesce(wal_status, 'reserved') FROM pg_replication_slots WHERE slot_name = $1", slot).Scan(&status)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", postgres.Explain("read replication slot "+slot, err)
	}
	return *status, nil
}

// holdsSlot reports whether repl is the connection streaming from the slot now.
func holdsSlot(ctx context.Context, conn *pgx.Conn, repl *pgconn.PgConn, slot string) (bool, error) {
	var pid *int32
	err := conn.QueryRow(ctx, "SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1", slot).Scan(&pid)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, postgres.Explain("read replication slot "+slot, err)
	}
	return pid != nil && repl != nil && uint32(*pid) == repl.PID(), nil
}

func dropSlot(ctx context.Context, conn *pgx.Conn, slot string) error {
	_, err := conn.Exec(ctx, "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1", slot)
	return postgres.Explain("drop replication slot "+slot, err)
}

func (s *Streamer) sendStatus(ctx context.Context, repl *pgconn.PgConn, durable LSN, reply bool) error {
	// Only what is durable in the repository is confirmed: the server may then discard it.
	err := pglogrepl.SendStandbyStatusUpdate(ctx, repl, pglogrepl.StandbyStatusUpdate{
		WALWritePosition: pglogrepl.LSN(durable), ReplyRequested: reply})
	return postgres.Explain("confirm LSN "+durable.String()+" to slot "+s.Slot, err)
}

// observeSlot reads how much WAL the server keeps for the slot.
func (s *Streamer) observeSlot(ctx context.Context, aux *pgx.Conn) {
	var retained *int64
	var status *string
	err := aux.QueryRow(ctx, `SELECT (pg_current_wal_lsn() - restart_lsn)::bigint, wal_status FROM pg_replication_slots WHERE slot_name = $1`, s.Slot).Scan(&retained, &status)
	if err != nil {
		return
	}
	s.update(func(st *State) {
		if retained != nil {
			st.RetainedBytes = *retained
		}
		if status != nil {
			st.WALStatus = *status
		}
	})
}
