package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/tracevault/tracevault/snapshot/progress"
)

// TagPITRBase tags the base snapshot of a PostgreSQL point-in-time chain.
const TagPITRBase = "pitr-base"

// Retention is a grandfather-father-son policy like restic's forget: a snapshot kept by any rule
// stays. Only complete snapshots count toward the rules; a partial one is kept while it is the
// newest snapshot or younger than MinAge, so a failed run's record is there to read.
type Retention struct {
	KeepLast, KeepHourly, KeepDaily, KeepWeekly, KeepMonthly int
	MinAge                                                   time.Duration
	// Pin keeps snapshots whatever the rules (id -> reason): what a layer above needs, such as
	// the base of the newest point-in-time chain.
	Pin map[string]string
}

// Validate refuses a policy that keeps nothing: with every keep rule at 0, prune would forget
// every snapshot (min_age only delays it).
func (p Retention) Validate() error {
	if p.KeepLast <= 0 && p.KeepHourly <= 0 && p.KeepDaily <= 0 && p.KeepWeekly <= 0 && p.KeepMonthly <= 0 {
		return errors.New("retention: every keep rule is 0, so prune would forget every snapshot; set at least one of keep_last, keep_hourly, keep_daily, keep_weekly, keep_monthly in [retention]")
	}
	return nil
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
	// The newest point-in-time base is what the change stream continues: forgetting it would
	// leave every segment since unrestorable.
	for _, m := range sorted {
		if m.Status == StatusComplete && slices.Contains(m.Tags, TagPITRBase) {
			mark(m.ID, "base of the PostgreSQL point-in-time chain")
			break
		}
	}
	for _, m := range sorted {
		if why, ok := p.Pin[m.ID]; ok {
			mark(m.ID, why)
		}
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
	// Damaged manifests were left alone; while there are any, no object is deleted (SweepSkipped
	// says so), since a damaged manifest's objects cannot be known.
	Damaged      []DamagedManifest `json:"damaged,omitempty"`
	SweepSkipped string            `json:"sweep_skipped,omitempty"`
	// LeftoversRemoved counts what append-only writers superseded (old lock generations,
	// verify positions, doctor canaries) and only prune removes (appendonly.go).
	LeftoversRemoved int `json:"leftovers_removed,omitempty"`
	// Retained are what the storage refused to delete for immutability (a retention policy or
	// a legal hold), with until when: prune kept going. A retained snapshot's objects stay.
	Retained []string `json:"retained,omitempty"`
}

// Prune forgets the snapshots the policy does not keep, then deletes every data object no
// remaining manifest references (mark and sweep), holding the repository lock throughout.
func (r *Repository) Prune(ctx context.Context, policy Retention, dryRun bool, lockWait time.Duration) (PruneReport, error) {
	rep := PruneReport{DryRun: dryRun}
	if err := r.refuseAppendOnly("prune"); err != nil {
		return rep, err
	}
	if err := policy.Validate(); err != nil {
		return rep, err
	}
	lock, err := r.Lock(ctx, "prune", lockWait)
	if err != nil {
		return rep, err
	}
	defer lock.Release(context.Background())
	cat, err := r.Catalog(ctx)
	if err != nil {
		return rep, err
	}
	r.logDamaged(cat.Damaged)
	snaps := cat.Snapshots
	rep.Kept, rep.Damaged = policy.Keep(snaps, time.Now()), cat.Damaged
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
			err := r.DeleteSnapshot(ctx, id)
			if errors.Is(err, ErrImmutable) {
				// The manifest stays, so its objects must too: it still restores.
				rep.Retained = append(rep.Retained, "snapshot "+id+": "+ErrorText(err.Error()))
				for _, m := range snaps {
					if m.ID == id {
						for _, o := range m.Objects {
							referenced[o.Name()] = true
						}
					}
				}
				continue
			}
			if err != nil {
				return rep, err
			}
		}
	}
	if len(cat.Damaged) > 0 {
		// Its objects are unknown: sweeping would delete them, and when the damage is a wrong
		// key or a transient fault, they are another snapshot's data.
		rep.SweepSkipped = fmt.Sprintf("%d damaged manifests: no object was deleted; remove them ('tracevault verify --all' names them, with the fix) and prune again", len(cat.Damaged))
		r.resetIndex()
		return rep, nil
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
		err := r.b.Delete(ctx, o.Name)
		if errors.Is(err, ErrImmutable) {
			rep.ObjectsRemoved--
			rep.BytesRemoved -= o.Size
			rep.Retained = append(rep.Retained, o.Name+": "+ErrorText(err.Error()))
			return nil
		}
		return err
	})
	if err == nil {
		r.resetIndex()
		rep.LeftoversRemoved, err = r.sweepLeftovers(ctx, lock, dryRun)
	}
	return rep, err
}

// resetIndex drops the fingerprint index: forgotten snapshots' objects must not be reused.
func (r *Repository) resetIndex() {
	r.mu.Lock()
	r.index = nil
	r.mu.Unlock()
}

// VerifyProblem is one bad object.
type VerifyProblem struct {
	Snapshot string `json:"snapshot"`
	Object   string `json:"object"` // the object's name, or a damaged manifest's
	What     string `json:"what"`
	Error    string `json:"error"`
	Fix      string `json:"fix,omitempty"`
}

// VerifyReport is the outcome of Verify.
type VerifyReport struct {
	Snapshots int `json:"snapshots"`
	Objects   int `json:"objects"`
	// ObjectsRead were read through the codec: every object with read-data, a sample's bucket
	// with a sample.
	ObjectsRead int `json:"objects_read"`
	// BytesRead is the plaintext read back (decrypted and decompressed), not the stored bytes.
	BytesRead int64           `json:"bytes_read"`
	Sample    *SampleReport   `json:"sample,omitempty"`
	Problems  []VerifyProblem `json:"problems"`
}

// VerifyOptions say how deep Verify looks. Sample (with ReadData) reads only one bucket of the
// objects; every object is still checked for existence and size.
type VerifyOptions struct {
	ReadData bool
	Sample   Sample
	// Content, with ReadData, adds checks of what objects hold by their own format, for the
	// objects it returns per snapshot (by object id): the store knows no formats, the layers
	// that write them do. An error (an unreadable section) is a problem of that snapshot.
	Content func(m *Manifest) (map[string]ContentCheck, error)
}

// ContentCheck reads an object's plaintext as verify streams it and returns what is wrong with
// its content. It need not read to the end: verify drains the rest, where the object's SHA-256
// is compared, and a read error is reported as the object's, before any content error.
type ContentCheck func(ctx context.Context, r io.Reader) error

// Verify checks that every object of the given snapshots (all when ids is empty) exists with
// its recorded size; with readData it also reads each one through the codec and checks its
// checksum. Each object is checked once even when several snapshots share it.
func (r *Repository) Verify(ctx context.Context, ids []string, readData bool) (VerifyReport, error) {
	return r.VerifyWith(ctx, ids, VerifyOptions{ReadData: readData})
}

// VerifyWith is Verify with a sample: a rotating sample reads the repository's next bucket and,
// when the run finishes, advances the rotation.
func (r *Repository) VerifyWith(ctx context.Context, ids []string, opts VerifyOptions) (VerifyReport, error) {
	var rep VerifyReport
	if opts.Sample.Buckets < 0 || opts.Sample.Bucket < 0 || opts.Sample.Bucket > opts.Sample.Buckets {
		return rep, fmt.Errorf("verify: sample bucket %d of %d: want 1 <= bucket <= buckets, or bucket 0 to rotate", opts.Sample.Bucket, opts.Sample.Buckets)
	}
	bucket := 0
	if opts.ReadData && opts.Sample.Buckets > 0 {
		var err error
		if bucket, err = r.nextBucket(ctx, opts.Sample); err != nil {
			return rep, err
		}
		rep.Sample = &SampleReport{Bucket: bucket, Buckets: opts.Sample.Buckets, Rotating: opts.Sample.Bucket == 0}
	}
	snaps, damaged, err := r.selectSnapshots(ctx, ids)
	if err != nil {
		return rep, err
	}
	for _, d := range damaged {
		rep.Problems = append(rep.Problems, VerifyProblem{Object: d.Name, What: "damaged manifest", Error: d.Error, Fix: d.Fix()})
	}
	reads := func(o ManifestObject) bool {
		return opts.ReadData && (bucket == 0 || opts.Sample.Holds(o.ID, bucket))
	}
	planReads(ctx, snaps, reads)
	// Each object is read once for each thing snapshots claim of it: a snapshot that reused an
	// object records its own rows for it, and a content check holds the object to them.
	checked := map[string]string{} // object and claimed rows -> error text ("" = fine)
	seen := map[string]bool{}      // objects counted
	for _, m := range snaps {
		rep.Snapshots++
		var content map[string]ContentCheck
		if opts.ReadData && opts.Content != nil {
			if content, err = opts.Content(&m); err != nil {
				rep.Problems = append(rep.Problems, VerifyProblem{Snapshot: m.ID, Object: manifestName(m.ID), What: "manifest", Error: err.Error()})
			}
		}
		for _, o := range m.Objects {
			claim := fmt.Sprintf("%s/%d", o.Name(), o.Rows)
			problem, done := checked[claim]
			if !done {
				read := reads(o)
				if !seen[o.Name()] {
					seen[o.Name()] = true
					rep.Objects++
					if read {
						rep.ObjectsRead++
					}
				}
				var check ContentCheck
				if read {
					check = content[o.ID]
				}
				problem = r.verifyObject(ctx, o.ObjectRef, read, check, &rep.BytesRead)
				checked[claim] = problem
			}
			if problem != "" {
				rep.Problems = append(rep.Problems, VerifyProblem{Snapshot: m.ID, Object: o.Name(), What: describeObject(o), Error: problem})
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return rep, err
	}
	if rep.Sample != nil && rep.Sample.Rotating {
		// The objects were checked all the same: a position that cannot be written (read-only
		// credentials, say) costs coverage, which the report says, not the run's result.
		if err := r.advanceBucket(ctx, opts.Sample, bucket); err != nil {
			r.log.Warn("verify: the sample rotation did not advance", "err", err)
			rep.Sample.PositionError = err.Error()
		}
	}
	return rep, nil
}

// planReads tells the context's progress reporter which objects a run will read, so it can
// show the total and name each object as it is read.
func planReads(ctx context.Context, snaps []Manifest, reads func(ManifestObject) bool) {
	rep := progress.From(ctx)
	if rep == progress.Nop {
		return
	}
	for _, m := range snaps {
		for _, o := range m.Objects {
			if reads(o) {
				rep.Plan(o.Unit())
			}
		}
	}
}

// selectSnapshots returns the given snapshots, or every valid one and the damaged manifests,
// read afresh: verify is what finds a manifest damaged where its size and modification time
// stayed (a filesystem's bit rot), which the catalog's cache would not notice (manifest_cache.go).
func (r *Repository) selectSnapshots(ctx context.Context, ids []string) ([]Manifest, []DamagedManifest, error) {
	if len(ids) == 0 {
		c, err := r.catalogCopy(ctx, true)
		return c.Snapshots, c.Damaged, err
	}
	var out []Manifest
	for _, id := range ids {
		m, err := r.snapshot(ctx, id, true)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, *m)
	}
	return out, nil, nil
}

func (r *Repository) verifyObject(ctx context.Context, ref ObjectRef, readData bool, check ContentCheck, read *int64) string {
	if err := ValidObjectID(ref.ID); err != nil {
		return err.Error()
	}
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
	src := &verifyReader{r: rc}
	var contentErr error
	if check != nil {
		contentErr = check(ctx, src)
	}
	_, _ = io.Copy(io.Discard, src)
	*read += src.n
	switch {
	case src.err != nil:
		return src.err.Error()
	case contentErr != nil:
		return contentErr.Error()
	}
	return ""
}

// verifyReader counts what verify reads and keeps the first read error, so that an object
// damaged in the repository is reported as such, not as whatever its content check made of it.
type verifyReader struct {
	r   io.Reader
	n   int64
	err error
}

func (c *verifyReader) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	if err != nil && err != io.EOF {
		c.err = err
	}
	return n, err
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
