package restore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeRun records what a scheduler run did: the loads in flight at once, the order of events,
// and the steps reported done.
type fakeRun struct {
	mu         sync.Mutex
	inFlight   int
	maxLoads   int
	events     []string
	done       int
	createTime time.Duration
	loadTime   time.Duration
	fail       string // "target partition" of the load that fails
}

func (f *fakeRun) log(e string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, e)
}

func (f *fakeRun) scheduler(workers int) *scheduler {
	return &scheduler{
		workers: workers,
		create: func(ctx context.Context, s Step) error {
			f.log("create " + s.Target)
			select {
			case <-time.After(f.createTime):
			case <-ctx.Done():
				return ctx.Err()
			}
			f.log("created " + s.Target)
			return nil
		},
		load: func(ctx context.Context, s Step) error {
			f.mu.Lock()
			f.inFlight++
			f.maxLoads = max(f.maxLoads, f.inFlight)
			f.events = append(f.events, "load "+s.Target+" "+s.Partition)
			f.mu.Unlock()
			defer func() {
				f.mu.Lock()
				f.inFlight--
				f.mu.Unlock()
			}()
			if s.Target+" "+s.Partition == f.fail {
				return errors.New("the server refused the insert")
			}
			select {
			case <-time.After(f.loadTime):
			case <-ctx.Done():
				return ctx.Err()
			}
			f.log("loaded " + s.Target + " " + s.Partition)
			return nil
		},
		other: func(ctx context.Context, s Step) error {
			f.log(string(s.Action) + " " + s.Target)
			return nil
		},
		done: func(Step) {
			f.mu.Lock()
			f.done++
			f.mu.Unlock()
		},
	}
}

// index is where event e happened, or -1.
func (f *fakeRun) index(e string) int {
	for i, got := range f.events {
		if got == e {
			return i
		}
	}
	return -1
}

// fakePlan is a database, tables of partitions each, and a view over the first.
func fakePlan(tables, partitions int) []Step {
	steps := []Step{{Action: ActionCreateDatabase, Target: "db"}}
	for t := range tables {
		target := fmt.Sprintf("db.t%d", t)
		steps = append(steps, Step{Action: ActionCreateTable, Target: target})
		for p := range partitions {
			steps = append(steps, Step{Action: ActionLoadPartition, Target: target, Partition: fmt.Sprintf("2026%02d", p+1)})
		}
	}
	return append(steps, Step{Action: ActionCreateView, Target: "db.v"})
}

// TestSchedulerFakeLoadsOverlap: partition loads run as many at once as the pool allows, never
// more, across tables; the next table is created while the previous one loads; no load starts
// before its table's create ran; a view waits for every load; every step is reported done once.
func TestSchedulerFakeLoadsOverlap(t *testing.T) {
	for _, workers := range []int{1, 2, 4} {
		t.Run(fmt.Sprintf("workers %d", workers), func(t *testing.T) {
			f := &fakeRun{createTime: 20 * time.Millisecond, loadTime: 60 * time.Millisecond}
			steps := fakePlan(3, 4)
			if err := f.scheduler(workers).run(context.Background(), steps); err != nil {
				t.Fatal(err)
			}
			if f.maxLoads != workers {
				t.Errorf("at most %d loads ran at once; want %d, the pool's size", f.maxLoads, workers)
			}
			if f.done != len(steps) {
				t.Errorf("%d steps reported done; want %d", f.done, len(steps))
			}
			for _, tbl := range []string{"db.t0", "db.t1", "db.t2"} {
				created := f.index("created " + tbl)
				for p := 1; p <= 4; p++ {
					if l := f.index(fmt.Sprintf("load %s 2026%02d", tbl, p)); l < created {
						t.Errorf("load of %s partition %d at event %d, before its table was created (event %d)", tbl, p, l, created)
					}
				}
			}
			// The second table is created before the first finished loading.
			if c, l := f.index("create db.t1"), f.index("loaded db.t0 202604"); c < 0 || l < 0 || c > l {
				t.Errorf("db.t1 created at event %d, db.t0's last load done at %d: creates waited for loads\n%s", c, l, strings.Join(f.events, "\n"))
			}
			view := f.index("create-view db.v")
			for i, e := range f.events {
				if strings.HasPrefix(e, "loaded ") && i > view {
					t.Errorf("%q after the view was created", e)
				}
			}
		})
	}
}

// TestSchedulerFakeFirstErrorWins: a failing load cancels the loads beside it and the creates
// queued after it, no later step runs, and the error returned is that load's, naming its table
// and partition.
func TestSchedulerFakeFirstErrorWins(t *testing.T) {
	f := &fakeRun{createTime: 5 * time.Millisecond, loadTime: 2 * time.Second, fail: "db.t0 202603"}
	steps := fakePlan(3, 4)
	start := time.Now()
	err := f.scheduler(3).run(context.Background(), steps)
	if err == nil {
		t.Fatal("a plan with a failing load ran to its end")
	}
	if !strings.Contains(err.Error(), "load-partition db.t0 202603") || !strings.Contains(err.Error(), "the server refused the insert") {
		t.Errorf("err %v; want the failing load's, naming table and partition", err)
	}
	if errors.Is(err, context.Canceled) {
		t.Errorf("err %v: a cancelled step's error was returned, not the cause", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("the run took %s after a load failed: the loads beside it were not cancelled", d)
	}
	if i := f.index("create-view db.v"); i >= 0 {
		t.Errorf("the view was created after a load failed")
	}
	for _, e := range f.events {
		if strings.HasPrefix(e, "loaded ") {
			t.Errorf("%q: a load beside the failed one ran to its end", e)
		}
	}
}

// TestSchedulerFakeCancelled: a run whose context ends stops and says so.
func TestSchedulerFakeCancelled(t *testing.T) {
	f := &fakeRun{createTime: time.Millisecond, loadTime: time.Minute}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := f.scheduler(2).run(ctx, fakePlan(2, 3)); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err %v; want the context's", err)
	}
}

// TestSchedulerFakeBarrier: a step that is neither a create nor a load (a ZooKeeper repair
// before a create) runs after everything queued before it, and what follows it after it.
func TestSchedulerFakeBarrier(t *testing.T) {
	f := &fakeRun{createTime: 10 * time.Millisecond, loadTime: 10 * time.Millisecond}
	steps := []Step{
		{Action: ActionCreateDatabase, Target: "db"},
		{Action: ActionCreateTable, Target: "db.a"},
		{Action: ActionLoadPartition, Target: "db.a", Partition: "1"},
		{Action: ActionDropGroup, Target: "db.b"},
		{Action: ActionCreateTable, Target: "db.b"},
		{Action: ActionLoadPartition, Target: "db.b", Partition: "1"},
	}
	if err := f.scheduler(4).run(context.Background(), steps); err != nil {
		t.Fatal(err)
	}
	want := []string{"create db", "created db", "create db.a", "created db.a", "load db.a 1", "loaded db.a 1",
		"drop-group db.b", "create db.b", "created db.b", "load db.b 1", "loaded db.b 1"}
	if strings.Join(f.events, "\n") != strings.Join(want, "\n") {
		t.Errorf("events:\n%s\nwant:\n%s", strings.Join(f.events, "\n"), strings.Join(want, "\n"))
	}
}
