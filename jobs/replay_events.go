package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/tracevault/tracevault/config"
	"github.com/tracevault/tracevault/jobs/replay"
	"github.com/tracevault/tracevault/snapshot/blobs"
	"github.com/tracevault/tracevault/snapshot/store"
)

// ActionReplayEvents is the run history's action of a replay of Langfuse's raw events.
const ActionReplayEvents = "replay-events"

// ReplayRequest asks for Langfuse's raw events written after a snapshot's cut (or a time) to be
// sent back to Langfuse for re-ingestion.
type ReplayRequest struct {
	// Snapshot is the snapshot ClickHouse holds (an ID, a unique prefix or "latest"); its cut,
	// less [langfuse] replay_margin, starts the replay. Since replaces it with a time.
	Snapshot string
	Since    time.Time
	DryRun   bool
	// Fresh ignores a checkpoint of the same replay: after a new restore, ClickHouse lost what
	// an earlier replay had sent.
	Fresh bool
	// Restored says ClickHouse was just restored from Snapshot, for the recovery point's words.
	Restored bool
}

// ReplayEventsResult is what a replay selected and sent, and the recovery point it reached.
type ReplayEventsResult struct {
	Snapshot       string    `json:"snapshot,omitempty"`
	Cut            time.Time `json:"cut,omitzero"`
	CutSkewSeconds float64   `json:"cut_skew_seconds,omitempty"`
	// From is where the replay starts before the margin: the cut, or the request's Since.
	From          time.Time `json:"from"`
	MarginSeconds float64   `json:"margin_seconds"`
	Container     string    `json:"container"`
	Checkpoint    string    `json:"checkpoint"`
	// Selection is what the window holds: counts by project and type, the time range, and the
	// keys that cannot be replayed.
	Selection *replay.Selection `json:"selection"`
	// LifecycleCutoff is set when the window reaches past [langfuse] events_retention: events
	// written before it may have been deleted by the container's lifecycle rule.
	LifecycleCutoff time.Time      `json:"lifecycle_cutoff,omitzero"`
	Replay          *replay.Result `json:"replay,omitempty"`
	DryRun          bool           `json:"dry_run,omitempty"`
	RecoveryPoint   string         `json:"recovery_point"`
}

// EventsURL is the container (or directory) where Langfuse writes raw events: [blobs] url with
// [langfuse] events_prefix below it.
func EventsURL(cfg *config.Config) string {
	u := strings.TrimSuffix(cfg.Blobs.URL, "/")
	if p := strings.Trim(cfg.Langfuse.EventsPrefix, "/"); p != "" {
		u += "/" + p
	}
	return u
}

// ReplayEvents lists the events container for events written after the request's start, in time
// order, and (unless a dry run) sends their keys to Langfuse's replay route, resuming a checkpoint
// of the same replay. A run that sends is recorded in the run history when repo is not nil.
func ReplayEvents(ctx context.Context, cfg *config.Config, repo *store.Repository, req ReplayRequest, log *slog.Logger) (*ReplayEventsResult, error) {
	lf := cfg.Langfuse
	if cfg.Blobs.URL == "" {
		return nil, errors.New("replay events: [blobs] url is not set: it names Langfuse's container of raw events")
	}
	if lf.URL == "" && !req.DryRun {
		return nil, errors.New("replay events: [langfuse] url is not set: replay-events sends keys to Langfuse's admin replay route")
	}
	res := &ReplayEventsResult{MarginSeconds: lf.ReplayMargin.D().Seconds(), Container: EventsURL(cfg), DryRun: req.DryRun,
		Checkpoint: lf.ReplayState}
	if res.Checkpoint == "" {
		res.Checkpoint = replay.DefaultStatePath()
	}
	since := req.Since
	if req.Snapshot != "" {
		if repo == nil {
			return nil, errors.New("replay events: a snapshot's cut needs the repository")
		}
		m, err := FindSnapshot(ctx, repo, req.Snapshot)
		if err != nil {
			return nil, err
		}
		res.Snapshot = m.ID
		// The set's cut is its earliest source's: the skew between sources is inside the window.
		// A snapshot without one (partial, or older) stands for no later than its start.
		res.Cut = m.Start
		if m.Cut != nil {
			res.Cut, res.CutSkewSeconds = m.Cut.Time, m.Cut.SkewSeconds
		}
		since = res.Cut
	}
	res.From = since.UTC()
	since = since.Add(-lf.ReplayMargin.D()).UTC()

	c, err := blobs.OpenContainer(ctx, res.Container, BlobCredentials(cfg.Blobs), false)
	if err != nil {
		return nil, fmt.Errorf("replay events: open %s: %w", res.Container, err)
	}
	ck, err := replay.Start(res.Checkpoint, c.String(), since, time.Now(), req.Fresh || req.DryRun, log)
	if err != nil {
		return nil, err
	}
	sel, err := replay.Select(ctx, c, ck.Window)
	if err != nil {
		return nil, err
	}
	res.Selection = sel
	if cutoff, gap := sel.Gap(time.Now(), lf.EventsRetention.D()); gap {
		res.LifecycleCutoff = cutoff
		log.Warn("the replay reaches past the events container's lifecycle rule: events written before the cutoff may be gone",
			"since", since, "cutoff", cutoff, "events_retention", lf.EventsRetention.D().String())
	}
	if sel.Unreplayable > 0 {
		log.Warn("keys in the window that Langfuse cannot replay", "count", sel.Unreplayable, "first", sel.Named)
	}
	if req.DryRun {
		res.RecoveryPoint = recoveryPoint(res, req)
		return res, nil
	}

	start := time.Now()
	client := &replay.Client{URL: lf.URL, Key: lf.AdminAPIKey.Reveal(), HTTP: &http.Client{Timeout: time.Minute},
		Retries: lf.ReplayRetries, Backoff: time.Second, MaxBackoff: 30 * time.Second}
	res.Replay, err = replay.Send(ctx, replay.Options{Client: client, Batch: lf.ReplayBatch, KeysPerSecond: float64(lf.ReplayKeysPerSecond),
		StatePath: res.Checkpoint, Log: log}, sel, ck)
	res.RecoveryPoint = recoveryPoint(res, req)
	if err != nil {
		err = fmt.Errorf("replay events after %s: %w (%d of %d sent; rerun the same command to resume from %s)",
			since.Format(time.RFC3339), err, res.Replay.Sent, sel.Count, res.Checkpoint)
	}
	if repo != nil {
		if rerr := recordReplay(ctx, repo, res, start, err); rerr != nil {
			log.Warn("replay not recorded in the run history", "error", rerr)
		}
	}
	return res, err
}

// recoveryPoint says in words where ClickHouse stands once Langfuse's worker has drained the
// replayed events: "ClickHouse restored to the snapshot at 11:45:00, then 4,812 events written
// until 11:58:31 replayed".
func recoveryPoint(res *ReplayEventsResult, req ReplayRequest) string {
	base := "ClickHouse"
	switch {
	case res.Snapshot != "" && req.Restored:
		base = fmt.Sprintf("ClickHouse restored to the snapshot %s at %s", res.Snapshot, clock(res.Cut))
	case res.Snapshot != "":
		base = fmt.Sprintf("ClickHouse at the snapshot %s (cut %s)", res.Snapshot, clock(res.Cut))
	case !res.From.IsZero():
		base = "ClickHouse from " + clock(res.From)
	}
	sel := res.Selection
	switch {
	case res.DryRun && sel.Count == 0:
		return base + ": no events written since " + clock(sel.Window.Since) + " to replay"
	case res.DryRun:
		return fmt.Sprintf("%s, then %s events written until %s would be replayed", base, grouped(sel.Count), clock(sel.Last))
	case res.Replay == nil || res.Replay.Sent == 0 && sel.Count == 0:
		return base + ": no events written since " + clock(sel.Window.Since) + " to replay"
	case !res.Replay.Done:
		return fmt.Sprintf("%s, then %s of %s events replayed, written until %s (incomplete)", base,
			grouped(res.Replay.Sent), grouped(sel.Count), clock(res.Replay.Reached))
	}
	return fmt.Sprintf("%s, then %s events written until %s replayed", base, grouped(res.Replay.Sent), clock(res.Replay.Reached))
}

// clock is a time as the recovery point names it: the time of day, with the date when it is
// not today's.
func clock(t time.Time) string {
	if t.IsZero() {
		return "the start"
	}
	t = t.UTC()
	if y, m, d := t.Date(); y == time.Now().UTC().Year() && m == time.Now().UTC().Month() && d == time.Now().UTC().Day() {
		return t.Format("15:04:05Z")
	}
	return t.Format("2006-01-02 15:04:05Z")
}

// grouped writes n with thousands separators: 4,812.
func grouped(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// recordReplay keeps the replay in the shared run history with the recovery point it reached.
func recordReplay(ctx context.Context, repo *store.Repository, res *ReplayEventsResult, start time.Time, err error) error {
	host, _ := os.Hostname()
	r := Run{ID: newRunID(), Job: ActionReplayEvents, Action: ActionReplayEvents, Trigger: TriggerManual, Host: host,
		Start: start.UTC(), End: time.Now().UTC(), Outcome: OutcomeSucceeded, Snapshot: res.Snapshot, Cut: res.Cut,
		CutSkewSeconds: res.CutSkewSeconds, RecoveryPoint: res.RecoveryPoint}
	if res.Replay != nil {
		r.ReplayedEvents = res.Replay.Sent
	}
	if err != nil {
		r.Outcome, r.Error = OutcomeFailed, err.Error()
		if ctx.Err() != nil {
			r.Outcome = OutcomeInterrupted
		}
		ctx = context.WithoutCancel(ctx)
	}
	return (&History{Repo: repo, Limit: historyLimit}).Record(ctx, r)
}
