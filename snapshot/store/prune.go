package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// Retention is a grandfather-father-son policy like restic's forget: a snapshot kept by any rule
// stays. Only complete snapshots count toward the rules; a partial one is kept while it is the
// newest snapshot or younger than MinAge, so a failed run's record is there to read.
type Retention struct {
	KeepLast, KeepHourly, KeepDaily, KeepWeekly, KeepMonthly int
	MinAge                                                   time.Duration
}

// Keep returns the ids of the snapshots the policy keeps, with the first reason for each.
func (p Retention) Keep(snaps []Manifest, now time.Time) map[string]string {
	keep := map[string]string{}
	sorted := append([]Manifest(nil), snaps...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Start.After(sorted[j].Start) })
	var newestComplete time.Time
	for _, m := range sorted {
		if m.Status == StatusComplete {
			newestComplete = m.Start
			break
		}
	}
	mark := func(id, why string) {
		if _, ok := keep[id]; !ok {
			keep[id] = why
		}
	}
	for _, m := range sorted {
		if p.MinAge > 0 && now.Sub(m.Start) < p.MinAge {
			mark(m.ID, "younger than min_age")
		}
		if m.Status != StatusComplete && !m.Start.Before(newestComplete) {
			mark(m.ID, "newest snapshot (partial)")
		}
	}
	rules := []struct {
		n      int
		why    string
		bucket func(time.Time) string
	}{
		{p.KeepLast, "last", func(t time.Time) string { return t.String() }},
		{p.KeepHourly, "hourly", func(t time.Time) string { return t.Format("2006-01-02T15") }},
		{p.KeepDaily, "daily", func(t time.Time) string { return t.Format("2006-01-02") }},
		{p.KeepWeekly, "weekly", func(t time.Time) string { y, w := t.ISOWeek(); return fmt.Sprintf("%d-W%02d", y, w) }},
		{p.KeepMonthly, "monthly", func(t time.Time) string { return t.Format("2006-01") }},
	}
	for _, rule := range rules {
		seen := map[string]bool{}
		for _, m := range sorted {
			if len(seen) >= rule.n {
				break
			}
			if m.Status != StatusComplete {
				continue
			}
			b := rule.bucket(m.Start.UTC())
			if !seen[b] {
				seen[b] = true
				mark(m.ID, rule.why)
			}
		}
	}
	return keep
}

// PruneReport says what prune removed (or would remove, in a dry run).
type PruneReport struct {
	DryRun           bool              `json:"dry_run"`
	Kept             map[string]string `json:"kept"` // id -> reason
	Forgotten        []string          `json:"forgotten"`
	ObjectsRemoved   int               `json:"objects_removed"`
	BytesRemoved     int64             `json:"bytes_removed"`
	ObjectsRemaining int               `json:"objects_remaining"`
}

// Prune forgets the snapshots the policy does not keep, then deletes every data object no
// remaining manifest references (mark and sweep), holding the repository lock throughout.
func (r *Repository) Prune(ctx context.Context, policy Retention, dryRun bool, lockWait time.Duration) (PruneReport, error) {
	rep := PruneReport{DryRun: dryRun}
	lock, err := r.Lock(ctx, "prune", lockWait)
	if err != nil {
		return rep, err
	}
	defer lock.Release(context.Background())
	snaps, err := r.Snapshots(ctx)
	if err != nil {
		return rep, err
	}
	rep.Kept = policy.Keep(snaps, time.Now())
	referenced := map[string]bool{}
	for _, m := range snaps {
		if _, ok := rep.Kept[m.ID]; !ok {
			rep.Forgotten = append(rep.Forgotten, m.ID)
			continue
		}
		for _, o := range m.Objects {
			referenced[o.Name()] = true
		}
	}
	if !dryRun {
		for _, id := range rep.Forgotten {
			if err := r.DeleteSnapshot(ctx, id); err != nil {
				return rep, err
			}
		}
	}
	err = r.b.List(ctx, "data/", func(o ObjectInfo) error {
		if referenced[o.Name] {
			rep.ObjectsRemaining++
			return nil
		}
		select {
		case <-lock.Lost():
			return errors.New("repository lock lost; stopping before deleting more")
		default:
		}
		rep.ObjectsRemoved++
		rep.BytesRemoved += o.Size
		if dryRun {
			return nil
		}
		return r.b.Delete(ctx, o.Name)
	})
	if err == nil {
		r.mu.Lock()
		r.index = nil // forgotten snapshots' objects must not be reused
		r.mu.Unlock()
	}
	return rep, err
}

// VerifyProblem is one bad object.
type VerifyProblem struct {
	Snapshot string `json:"snapshot"`
	Object   string `json:"object"`
	What     string `json:"what"`
	Error    string `json:"error"`
}

// VerifyReport is the outcome of Verify.
type VerifyReport struct {
	Snapshots int             `json:"snapshots"`
	Objects   int             `json:"objects"`
	BytesRead int64           `json:"bytes_read"`
	Problems  []VerifyProblem `json:"problems"`
}

// Verify checks that every object of the given snapshots (all when ids is empty) exists with
// its recorded size; with readData it also reads each one through the codec and checks its
// checksum. Each object is checked once even when several snapshots share it.
func (r *Repository) Verify(ctx context.Context, ids []string, readData bool) (VerifyReport, error) {
	var rep VerifyReport
	snaps, err := r.selectSnapshots(ctx, ids)
	if err != nil {
		return rep, err
	}
	checked := map[string]string{} // object -> error text ("" = fine)
	for _, m := range snaps {
		rep.Snapshots++
		for _, o := range m.Objects {
			problem, done := checked[o.Name()]
			if !done {
				rep.Objects++
				problem = r.verifyObject(ctx, o.ObjectRef, readData, &rep.BytesRead)
				checked[o.Name()] = problem
			}
			if problem != "" {
				rep.Problems = append(rep.Problems, VerifyProblem{Snapshot: m.ID, Object: o.Name(), What: describeObject(o), Error: problem})
			}
		}
	}
	return rep, ctx.Err()
}

func (r *Repository) selectSnapshots(ctx context.Context, ids []string) ([]Manifest, error) {
	if len(ids) == 0 {
		return r.Snapshots(ctx)
	}
	var out []Manifest
	for _, id := range ids {
		m, err := r.Snapshot(ctx, id)
		if err != nil {
			return nil, err
		}
		out = append(out, *m)
	}
	return out, nil
}

func (r *Repository) verifyObject(ctx context.Context, ref ObjectRef, readData bool, read *int64) string {
	info, err := r.b.Stat(ctx, ref.Name())
	switch {
	case err != nil:
		return err.Error()
	case info.Size != ref.Size:
		return fmt.Sprintf("stored size %d, manifest says %d", info.Size, ref.Size)
	case !readData:
		return ""
	}
	rc, err := r.OpenObject(ctx, ref)
	if err != nil {
		return err.Error()
	}
	defer rc.Close()
	n, err := io.Copy(io.Discard, rc)
	*read += n
	if err != nil {
		return err.Error()
	}
	return ""
}

func describeObject(o ManifestObject) string {
	parts := []string{o.Source}
	for _, s := range []string{o.Database, o.Table, o.Partition, o.Replica} {
		if s != "" {
			parts = append(parts, s)
		}
	}
	return strings.Join(parts, " ")
}
