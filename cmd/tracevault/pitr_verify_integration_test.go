package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tracevault/tracevault/internal/devstack"
	"github.com/tracevault/tracevault/jobs"
	"github.com/tracevault/tracevault/snapshot/postgres"
	"github.com/tracevault/tracevault/snapshot/postgres/pitr"
	"github.com/tracevault/tracevault/snapshot/store"
)

// TestVerifyAndPrunePITRChain: verify checks a streamed chain and, with --read-data, reads its
// segments (counted in --json); a damaged segment byte is found only by reading, and named;
// prune leaves the only chain (the newest restorable point) whole.
func TestVerifyAndPrunePITRChain(t *testing.T) {
	env := devstack.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	dsn := env.PGDatabase(t, "it_cli_pitr")
	slot := fmt.Sprintf("tv_cli_%d_%d", os.Getpid(), time.Now().UnixNano()%1e6)
	t.Cleanup(func() {
		if c, err := pgx.Connect(context.Background(), env.PGDSN); err == nil {
			c.Exec(context.Background(), "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1", slot)
			c.Close(context.Background())
		}
	})
	dir := filepath.Join(t.TempDir(), "repo")
	repo, err := store.Open(ctx, store.Options{URL: "file://" + dir, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE TABLE public.t (id bigserial PRIMARY KEY, v text)"); err != nil {
		t.Fatal(err)
	}
	s := &pitr.Streamer{DSN: dsn, Slot: slot, Publication: slot, Interval: 500 * time.Millisecond, Log: quiet, Base: postgres.Source{Log: quiet}}
	sctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(sctx, repo) }()
	var segs []pitr.Segment
	for len(segs) < 2 {
		select {
		case err := <-done:
			t.Fatalf("streamer stopped: %v", err)
		case <-time.After(300 * time.Millisecond):
		}
		if chains, err := pitr.Chains(ctx, repo); err == nil && len(chains) == 1 {
			if _, err := conn.Exec(ctx, "INSERT INTO public.t (v) VALUES ('x')"); err != nil {
				t.Fatal(err)
			}
			if segs, err = pitr.Segments(ctx, repo, chains[0].ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	stop()
	<-done

	cfg := catalogConfig(t, dir, "")
	code, out, errOut := runCLI("--config", cfg, "--json", "verify", "--all", "--read-data")
	var rep jobs.VerifyReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 0 {
		t.Fatalf("verify: exit %d, %v\n%s%s", code, err, out, errOut)
	}
	if rep.PITR.Chains != 1 || rep.PITR.Segments < 2 || rep.PITR.SegmentsRead != rep.PITR.Segments || len(rep.Problems) > 0 {
		t.Fatalf("verify --read-data --json: %+v", rep)
	}
	bodyFile := fmt.Sprintf("%016X.seg", uint64(segs[0].EndLSN))
	if segs[0].BodyTag != "" { // written by this version: the body's name is its writer's
		bodyFile = fmt.Sprintf("%016X-%s.seg", uint64(segs[0].EndLSN), segs[0].BodyTag)
	}
	body := filepath.Join(dir, "pitr", segs[0].Chain, "seg", bodyFile)
	raw, err := os.ReadFile(body)
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)/2] ^= 0x10
	if err := os.WriteFile(body, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	name := strings.TrimPrefix(filepath.ToSlash(body), filepath.ToSlash(dir)+"/")
	runSteps(t, cfg, []cliStep{
		{[]string{"verify", "--all"}, 0, []string{"1 point-in-time chains", "0 problems"}},
		{[]string{"verify", "--all", "--read-data"}, 1, []string{"BAD  " + name, "point-in-time segment", "1 problems"}},
		{[]string{"prune", "--dry-run"}, 0, []string{"kept 1 snapshots, would forget 0"}},
	})
	code, out, _ = runCLI("--config", cfg, "--json", "prune", "--dry-run")
	var pr jobs.PruneReport
	if err := json.Unmarshal([]byte(out), &pr); err != nil || code != 0 || len(pr.PITRChains) != 0 {
		t.Fatalf("prune --dry-run --json: exit %d, %v, %+v", code, err, pr)
	}
}
