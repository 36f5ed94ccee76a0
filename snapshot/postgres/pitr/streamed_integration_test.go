package pitr

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tracevault/tracevault/internal/devstack"
	"github.com/tracevault/tracevault/snapshot/postgres"
	"github.com/tracevault/tracevault/snapshot/store"
)

// TestPITRStreamedTransactions: with a small logical_decoding_work_mem the server streams large
// transactions before they commit (protocol 2), interleaved with small ones. A committed one
// with a rolled-back savepoint, and an aborted one, restore exactly as the ledger recorded.
func TestPITRStreamedTransactions(t *testing.T) {
	env := devstack.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	dsn := env.PGDatabase(t, "it_pitrs")
	slot := testSlot(t, env, "tv_its")
	repo, err := store.Open(ctx, store.Options{URL: "file://" + t.TempDir(), Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	conns := make([]*pgx.Conn, 3)
	for i := range conns {
		if conns[i], err = pgx.Connect(ctx, dsn); err != nil {
			t.Fatal(err)
		}
		defer conns[i].Close(context.Background())
	}
	a, b, c := conns[0], conns[1], conns[2]
	for _, sql := range workloadSchema {
		execSQL(t, a, sql)
	}
	s := &Streamer{DSN: dsn, Slot: slot, Publication: slot, Interval: 500 * time.Millisecond, Log: testLog(),
		Base: postgres.Source{Log: quiet}, decodingWorkMem: "64kB"}
	sctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(sctx, repo) }()
	defer func() { stop(); <-done }()
	r := &running{s: s, cancel: stop, done: done}
	waitChain(t, repo, r)

	w := &writer{t: t, conn: a, rnd: rand.New(rand.NewPCG(5, 6))}
	for range 5 {
		w.step(ctx)
	}
	big := func(conn *pgx.Conn, from int) pgx.Tx {
		tx, err := conn.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO public.items (k, v) SELECT g, repeat('s', 200) FROM generate_series($1::int, $1::int + 3000) g`, from); err != nil {
			t.Fatal(err)
		}
		return tx
	}
	txB := big(b, 1)
	txC := big(c, 100000)
	if _, err := txB.Exec(ctx, "SAVEPOINT s1"); err != nil {
		t.Fatal(err)
	}
	if _, err := txB.Exec(ctx, `INSERT INTO public.tags (name) SELECT 'gone' || g FROM generate_series(1, 2000) g`); err != nil {
		t.Fatal(err)
	}
	w.step(ctx)
	during := w.ledger[len(w.ledger)-1]
	if _, err := txB.Exec(ctx, "ROLLBACK TO SAVEPOINT s1"); err != nil {
		t.Fatal(err)
	}
	if _, err := txB.Exec(ctx, `UPDATE public.items SET j = '{"b": true}' WHERE v = repeat('s', 200) AND k BETWEEN 1 AND 500`); err != nil {
		t.Fatal(err)
	}
	w.step(ctx)
	if err := txC.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if err := txB.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	afterB := w.record(ctx, a, "after the streamed transaction")
	for range 5 {
		w.step(ctx)
	}
	last := w.ledger[len(w.ledger)-1]
	waitCovered(t, repo, r, last.at)
	if n := s.State().Streamed; n != 1 {
		t.Fatalf("%d streamed transactions committed, want 1 (is logical_decoding_work_mem honoured?)", n)
	}
	during.note, last.note = "inside the streamed transaction", "after it"
	for _, p := range []ledgerPoint{during, afterB, last} {
		restoreAndCheck(t, env, repo, dsn, Target{Time: p.at}, p)
	}
}
