package replay

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"time"

	"github.com/tracevault/tracevault/snapshot/progress"
)

// Start returns the checkpoint a replay of container from since continues: the one at path
// when it is of the same replay (same container and start) and fresh is false, else a new one
// whose window ends now. A finished checkpoint is returned as it is: its replay is done.
func Start(path, container string, since, now time.Time, fresh bool, log *slog.Logger) (*Checkpoint, error) {
	if !fresh {
		ck, err := LoadCheckpoint(path)
		if err != nil {
			return nil, err
		}
		if ck != nil && ck.same(container, Window{Since: since}) {
			return ck, nil
		}
		if ck != nil {
			log.Warn("replay checkpoint is of another replay; starting over", "checkpoint", path,
				"its_container", ck.Container, "its_since", ck.Window.Since)
		}
	}
	return &Checkpoint{Container: container, Window: Window{Since: since.UTC(), Until: now.UTC()}}, nil
}

// Options are how a replay sends its selection.
type Options struct {
	Client *Client
	// Batch is the keys per request, 1 to MaxBatch.
	Batch int
	// KeysPerSecond paces the requests; 0 sends as fast as Langfuse answers.
	KeysPerSecond float64
	// StatePath is the checkpoint file.
	StatePath string
	Log       *slog.Logger
}

// Result is what a replay did over all its runs (a resumed one included).
type Result struct {
	// Resumed is how many events earlier runs had sent when this one started.
	Resumed int `json:"resumed,omitempty"`
	Sent    int `json:"sent"`
	Batches int `json:"batches"`
	Queued  int `json:"queued"`
	Skipped int `json:"skipped"`
	// Errors are Langfuse's reasons for keys it skipped, each with the batch it answered.
	Errors []string `json:"errors,omitempty"`
	// Reached is the write time of the newest event Langfuse acknowledged: ClickHouse will hold
	// every replayable event written up to it once Langfuse's worker has drained its queue.
	Reached time.Time `json:"reached,omitzero"`
	Done    bool      `json:"done"`
}

func resultOf(ck *Checkpoint, resumed int) *Result {
	r := &Result{Resumed: resumed, Sent: ck.Sent, Batches: ck.Batches, Queued: ck.Queued, Skipped: ck.Skipped,
		Errors: ck.Errors, Done: ck.Done}
	if ck.Position != nil {
		r.Reached = ck.Position.Modified
	}
	return r
}

// Send sends the selection's events after the checkpoint's position, in batches, saving the
// checkpoint after each batch Langfuse acknowledges. On an error the checkpoint holds every
// acknowledged batch, and the result says how far the replay came.
func Send(ctx context.Context, o Options, sel *Selection, ck *Checkpoint) (*Result, error) {
	resumed := ck.Sent
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if ck.Done {
		return resultOf(ck, resumed), nil
	}
	if o.Batch < 1 || o.Batch > MaxBatch {
		o.Batch = MaxBatch
	}
	events := sel.Events
	if ck.Position != nil {
		pos := *ck.Position
		events = events[sort.Search(len(events), func(i int) bool { return compareEvents(events[i], pos) > 0 }):]
		o.Log.Info("resuming replay", "checkpoint", o.StatePath, "sent_before", ck.Sent, "after", pos.Modified, "remaining", len(events))
	}
	rep := progress.From(ctx)
	batches := split(events, o.Batch, maxBody)
	units := make([]progress.Unit, len(batches))
	for i, b := range batches {
		units[i] = progress.Unit{Source: "events", Table: "batch", Partition: strconv.Itoa(ck.Batches + i + 1), Rows: int64(len(b))}
		rep.Plan(units[i])
	}
	var next time.Time
	for b, u := range units {
		batch := batches[b]
		if err := pace(ctx, next); err != nil {
			return resultOf(ck, resumed), err
		}
		if o.KeysPerSecond > 0 {
			next = time.Now().Add(time.Duration(float64(len(batch)) / o.KeysPerSecond * float64(time.Second)))
		}
		rep.Begin(u)
		keys := make([]string, len(batch))
		for i, e := range batch {
			keys[i] = e.Key
		}
		ans, err := o.Client.Replay(ctx, keys)
		if err != nil {
			return resultOf(ck, resumed), fmt.Errorf("batch %s of events %s..%s: %w", u.Partition,
				batch[0].Modified.Format(time.RFC3339), batch[len(batch)-1].Modified.Format(time.RFC3339), err)
		}
		last := batch[len(batch)-1]
		ck.Position = &last
		ck.Sent += len(batch)
		ck.Batches++
		ck.Queued += ans.Queued
		ck.Skipped += ans.Skipped
		for _, e := range ans.Errors {
			if len(ck.Errors) < NameLimit {
				ck.Errors = append(ck.Errors, fmt.Sprintf("batch %s (%s..%s): %s", u.Partition, batch[0].Key, last.Key, e))
			}
		}
		if ans.Queued+ans.Skipped != len(batch) || len(ans.Errors) > 0 {
			o.Log.Warn("Langfuse did not queue every key of a batch", "batch", u.Partition, "keys", len(batch),
				"queued", ans.Queued, "skipped", ans.Skipped, "errors", ans.Errors)
		}
		if err := ck.save(o.StatePath); err != nil {
			// The batch is in Langfuse's queue but the checkpoint does not say so: a resume
			// resends it, which the ReplacingMergeTree tables absorb.
			return resultOf(ck, resumed), err
		}
		rep.Add(0, int64(len(batch)))
		rep.End(u)
	}
	ck.Done = true
	if err := ck.save(o.StatePath); err != nil {
		return resultOf(ck, resumed), err
	}
	return resultOf(ck, resumed), nil
}

// maxBody keeps a request under the 1 MB body Next.js API routes accept by default, whatever
// the keys' lengths; JSON adds a few bytes per key.
const maxBody = 900 << 10

// split cuts events into batches of at most n keys and about maxBytes of JSON each.
func split(events []Event, n, maxBytes int) [][]Event {
	var out [][]Event
	start, size := 0, 0
	for i, e := range events {
		k := len(e.Key) + 8
		if i > start && (i-start == n || size+k > maxBytes) {
			out = append(out, events[start:i])
			start, size = i, 0
		}
		size += k
	}
	if start < len(events) {
		out = append(out, events[start:])
	}
	return out
}

// pace waits until next, the earliest time the rate allows the next request.
func pace(ctx context.Context, next time.Time) error {
	d := time.Until(next)
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
