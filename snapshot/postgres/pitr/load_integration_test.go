package pitr

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tracevault/tracevault/internal/devstack"
	"github.com/tracevault/tracevault/snapshot/store"
)

// TestPITRStreamerMemory runs the streamer as its own process (TestPITRStreamChild) while 8
// writers commit small transactions and, now and then, large ones, for
// TRACEVAULT_PITR_LOAD (default 2s; `1m` for the figure in the report). It reports the
// streamer's peak RSS (VmHWM) and peak Go heap (from its GC trace), which must stay under the
// project's 256 MiB, and restores to the moment the writers stopped.
func TestPITRStreamerMemory(t *testing.T) {
	env := devstack.Require(t)
	load := 2 * time.Second
	if v := os.Getenv("TRACEVAULT_PITR_LOAD"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("TRACEVAULT_PITR_LOAD=%q: %v", v, err)
		}
		load = d
	}
	ctx, cancel := context.WithTimeout(context.Background(), load+4*time.Minute)
	defer cancel()
	dsn := env.PGDatabase(t, "it_pitrm")
	slot := testSlot(t, env, "tv_itm")
	url := "file://" + t.TempDir()
	conn := workloadConn(ctx, t, dsn)

	child := exec.Command(os.Args[0], "-test.run", "^TestPITRStreamChild$", "-test.count=1")
	child.Env = append(os.Environ(), killChildEnv+"="+dsn+"|"+slot+"|"+url, "GODEBUG=gctrace=1")
	stderr, err := child.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer child.Process.Kill()
	// gc 12 @3.1s 2%: ... 4->5->2 MB, 6 MB goal, ...: the first figure is the heap when the
	// collection started, the largest the heap was.
	var peakHeap atomic.Int64
	traced := make(chan struct{})
	go func() {
		defer close(traced)
		gc := regexp.MustCompile(`(\d+)->\d+->\d+ MB`)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := gc.FindStringSubmatch(sc.Text()); m != nil {
				n, _ := strconv.ParseInt(m[1], 10, 64)
				if n > peakHeap.Load() {
					peakHeap.Store(n)
				}
			}
		}
	}()
	repo, err := store.Open(ctx, store.Options{URL: url, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, ok, err := Latest(ctx, repo); err != nil {
			t.Fatal(err)
		} else if ok {
			break
		}
		if ctx.Err() != nil || child.ProcessState != nil {
			t.Fatal("the streaming child took no base")
		}
		time.Sleep(100 * time.Millisecond)
	}

	var commits, changes atomic.Int64
	errs := make(chan error, 8)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range 8 {
		wg.Go(func() { errs <- loadWriter(ctx, dsn, uint64(i), start.Add(load), &commits, &changes) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	elapsed := time.Since(start)
	var end ledgerPoint
	if err := conn.QueryRow(ctx, "SELECT clock_timestamp()").Scan(&end.at); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, stateSum).Scan(&end.sum); err != nil {
		t.Fatal(err)
	}
	end.note = "the writers' end"
	for rp, ok, err := Latest(ctx, repo); !ok || rp.Time.Before(end.at); rp, ok, err = Latest(ctx, repo) {
		if err != nil || ctx.Err() != nil {
			t.Fatalf("the recovery point never reached the writers' end: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	lag := time.Since(end.at) // the same host's clock
	hwm := vmHWM(t, child.Process.Pid)
	_ = child.Process.Kill()
	_ = child.Wait()
	<-traced
	t.Logf("8 writers for %s: %d transactions (%.0f/s), %d row changes (%.0f/s); the recovery point passed their end %s after it; streamer peak RSS %d MiB, peak Go heap %d MB",
		elapsed.Round(time.Second), commits.Load(), float64(commits.Load())/elapsed.Seconds(), changes.Load(), float64(changes.Load())/elapsed.Seconds(),
		lag.Round(100*time.Millisecond), hwm>>20, peakHeap.Load())
	if hwm > 256<<20 {
		t.Errorf("the streamer's peak RSS is %d MiB, over the 256 MiB bound", hwm>>20)
	}
	restoreAndCheck(t, env, repo, dsn, Target{Time: end.at}, end)
}

// loadWriter commits until the deadline: mostly a few inserts, updates and deletes, and every
// 300th transaction 3,000 rows at once.
func loadWriter(ctx context.Context, dsn string, seed uint64, until time.Time, commits, changes *atomic.Int64) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	rnd := rand.New(rand.NewPCG(seed, 99))
	var ids []int64
	for n := 0; time.Now().Before(until); n++ {
		tx, err := conn.Begin(ctx)
		if err != nil {
			return err
		}
		if n%300 == 299 {
			tag, err := tx.Exec(ctx, `INSERT INTO public.items (k, v) SELECT g, repeat('L', 200) FROM generate_series(1, 3000) g`)
			if err != nil {
				return fmt.Errorf("writer %d: large insert: %w", seed, err)
			}
			changes.Add(tag.RowsAffected())
		}
		for range 1 + rnd.IntN(5) {
			var tag interface{ RowsAffected() int64 }
			switch op := rnd.IntN(10); {
			case op < 5 || len(ids) < 10:
				var id int64
				err = tx.QueryRow(ctx, `INSERT INTO public.items (k, v, j) VALUES ($1, $2, $3) RETURNING id`,
					rnd.IntN(1000), strings.Repeat("x", rnd.IntN(200)), fmt.Sprintf(`{"w": %d}`, seed)).Scan(&id)
				ids = append(ids, id)
				changes.Add(1)
				continue
			case op < 8:
				tag, err = tx.Exec(ctx, `UPDATE public.items SET k = k + 1, v = v || 'u' WHERE id = $1`, ids[rnd.IntN(len(ids))])
			default:
				i := rnd.IntN(len(ids))
				tag, err = tx.Exec(ctx, `DELETE FROM public.items WHERE id = $1`, ids[i])
				ids = append(ids[:i], ids[i+1:]...)
			}
			if err != nil {
				return fmt.Errorf("writer %d: %w", seed, err)
			}
			changes.Add(tag.RowsAffected())
		}
		if err := tx.Commit(ctx); err != nil {
			return fmt.Errorf("writer %d: commit: %w", seed, err)
		}
		commits.Add(1)
	}
	return nil
}

// vmHWM is a process's peak resident set size in bytes.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("read the streamer's memory: %v", err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("VmHWM %q: %v", v, err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc/<pid>/status")
	return 0
}
