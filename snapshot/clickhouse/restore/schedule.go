// The order in which a plan's steps run: creates on a lane of their own, partition loads in a
// bounded pool, every other step alone. Execute gives it the work; the scheduling is kept apart
// so that tests can drive it with fakes.

package restore

import (
	"context"
	"fmt"
	"sync"

	"golang.org/x/sync/errgroup"
)

// scheduler runs a plan's steps with these functions:
//
//   - create-database and create-table steps run one after another, in plan order, on a lane of
//     their own: on 18.16 a CREATE … ON CLUSTER waits for every replica through the distributed
//     DDL queue (a second or more on a busy cluster), and run between loads it left the pool
//     idle at every table boundary. Now the next tables are created while the previous ones load.
//   - load-partition steps run up to workers at once, in plan order, each once its table's
//     create has run (a table the plan does not create loads at once). Loads of one table run
//     side by side as loads of different tables do: each step is one partition, and nothing of
//     one partition's load touches another's (see stagingTables).
//   - any other step (views, ZooKeeper repairs, SYSTEM RESTORE REPLICA) waits until every step
//     before it has run, then runs alone: a view must find its tables loaded, a ZooKeeper repair
//     must come before the CREATE that would join the old group.
//
// The first step to fail cancels the others, and its error, naming the step, is the one
// returned; done is told of each step that ran, from whichever goroutine ran it.
type scheduler struct {
	workers int
	create  func(ctx context.Context, s Step) error
	load    func(ctx context.Context, s Step) error
	other   func(ctx context.Context, s Step) error
	done    func(s Step)
}

// run runs steps as the scheduler says; total is the plan's step count, for the errors' "i/n".
func (sc *scheduler) run(ctx context.Context, steps []Step) error {
	stepErr := func(i int, s Step, err error) error {
		return fmt.Errorf("restore step %d/%d (%s %s %s): %w", i+1, len(steps), s.Action, s.Target, s.Partition, err)
	}
	var (
		g       *errgroup.Group
		gctx    context.Context
		ddlTail chan struct{}            // closed once the last create queued has run
		created map[string]chan struct{} // a create-table step's target -> closed once it ran
		slots   = make(chan struct{}, max(sc.workers, 1))
	)
	// A barrier: the steps queued so far have all run (or one failed).
	segment := func() error {
		var err error
		if g != nil {
			err = g.Wait()
		}
		g, gctx = errgroup.WithContext(ctx)
		ddlTail = make(chan struct{})
		close(ddlTail)
		created = map[string]chan struct{}{}
		return err
	}
	_ = segment()
	for i, s := range steps {
		switch s.Action {
		case ActionCreateDatabase, ActionCreateTable:
			prev, ready, gctx := ddlTail, make(chan struct{}), gctx
			ddlTail = ready
			if s.Action == ActionCreateTable {
				created[s.Target] = ready
			}
			g.Go(func() error {
				select {
				case <-prev:
				case <-gctx.Done():
					return gctx.Err()
				}
				if err := sc.create(gctx, s); err != nil {
					return stepErr(i, s, err)
				}
				sc.done(s)
				close(ready)
				return nil
			})
		case ActionLoadPartition:
			select {
			case slots <- struct{}{}:
			case <-gctx.Done():
				return segment() // a step failed or ctx ended: the wait says why
			}
			ready, gctx := created[s.Target], gctx
			g.Go(func() error {
				defer func() { <-slots }()
				if ready != nil {
					select {
					case <-ready:
					case <-gctx.Done():
						return gctx.Err()
					}
				}
				if err := sc.load(gctx, s); err != nil {
					return stepErr(i, s, err)
				}
				sc.done(s)
				return nil
			})
		default:
			if err := segment(); err != nil {
				return err
			}
			if err := sc.other(ctx, s); err != nil {
				return stepErr(i, s, err)
			}
			sc.done(s)
		}
	}
	return segment()
}

// counter tells a Progress of each finished step, counting them, from any goroutine.
type counter struct {
	mu       sync.Mutex
	done     int
	total    int
	progress Progress
}

func (c *counter) finished(s Step) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.done++
	if c.progress != nil {
		c.progress(c.done, c.total, s)
	}
}
