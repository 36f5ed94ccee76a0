package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// maxSampleBuckets bounds --sample: beyond it a run reads too little to be worth scheduling.
const maxSampleBuckets = 10000

// positionName holds the next bucket of each rotating sample size, so that successive runs
// cover every object.
const positionName = "verify/position"

// positionPrefix holds the position as it is written now: a new object per run, never a
// rewrite (an append-only credential could not rewrite it), read by "newest valid wins". The
// old single object is read when there is no new one yet.
const positionPrefix = "verify/positions/"

// Sample selects the objects whose data a verify reads, like restic's --read-data-subset:
// objects fall into Buckets buckets by a stable hash of their id. Bucket is 1-based; 0 means
// the next bucket in the rotation the repository records, so that every object is read within
// Buckets runs, new objects included (they fall into buckets by hash too). The zero Sample
// (Buckets 0) reads every object and records nothing.
type Sample struct {
	Buckets int `json:"buckets"`
	Bucket  int `json:"bucket"`
}

// ParseSample reads "P%" (a rotating sample: ⌈100/P⌉ buckets) or "N/M" (bucket N of M, fixed).
func ParseSample(s string) (Sample, error) {
	const fix = `give a percentage such as "10%" (each run reads the next tenth) or "N/M" such as "3/10" (the third of ten buckets)`
	s = strings.TrimSpace(s)
	if n, m, ok := strings.Cut(s, "/"); ok {
		bucket, err1 := strconv.Atoi(n)
		buckets, err2 := strconv.Atoi(m)
		if err1 != nil || err2 != nil || buckets < 1 || buckets > maxSampleBuckets || bucket < 1 || bucket > buckets {
			return Sample{}, fmt.Errorf("sample %q: N/M needs 1 <= N <= M <= %d; %s", s, maxSampleBuckets, fix)
		}
		return Sample{Buckets: buckets, Bucket: bucket}, nil
	}
	p, err := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
	if err != nil || !strings.HasSuffix(s, "%") || math.IsNaN(p) || p <= 0 || p > 100 {
		return Sample{}, fmt.Errorf("sample %q: %s, with 0 < P <= 100", s, fix)
	}
	buckets := math.Ceil(100 / p)
	if buckets > maxSampleBuckets {
		return Sample{}, fmt.Errorf("sample %q: at most %d buckets (%.2f%%); %s", s, maxSampleBuckets, 100.0/maxSampleBuckets, fix)
	}
	return Sample{Buckets: int(buckets)}, nil
}

// Holds says whether bucket (1-based) of s.Buckets contains the object.
func (s Sample) Holds(id string, bucket int) bool {
	h := fnv.New64a()
	_, _ = h.Write([]byte(id))
	return int(h.Sum64()%uint64(s.Buckets))+1 == bucket
}

// SampleReport says which bucket a sampled verify read.
type SampleReport struct {
	Bucket  int `json:"bucket"`
	Buckets int `json:"buckets"`
	// Rotating is true when the bucket came from (and advanced) the repository's rotation.
	Rotating bool `json:"rotating"`
	// PositionError says why the rotation did not advance: the next run reads this bucket again.
	PositionError string `json:"position_error,omitempty"`
}

// verifyPosition is the rotation state: the next 1-based bucket for each bucket count, so
// that a daily 10% job and an occasional 25% run by hand each keep their own place.
type verifyPosition struct {
	Next map[string]int `json:"next"`
}

// nextBucket returns the bucket this run reads: the fixed one, or the rotation's next.
func (r *Repository) nextBucket(ctx context.Context, s Sample) (int, error) {
	if s.Bucket > 0 {
		return s.Bucket, nil
	}
	pos, name, err := r.readPosition(ctx)
	switch {
	case errors.Is(err, ErrNotFound):
		return 1, nil
	case errors.Is(err, ErrUndecodable):
		// A damaged position only costs where the rotation stands: start it again.
		r.log.Warn("verify: the sample position is unreadable; starting the rotation at bucket 1", "object", name, "err", err)
		return 1, nil
	case err != nil:
		return 0, fmt.Errorf("verify: read the sample position %s: %w", name, err)
	}
	if next := pos.Next[strconv.Itoa(s.Buckets)]; next >= 1 && next <= s.Buckets {
		return next, nil
	}
	return 1, nil
}

// advanceBucket records that bucket was read. Not under the repository lock (verify only
// reads, and must not wait for a backup): two concurrent runs both write the same next bucket,
// which at worst reads one bucket twice and delays full coverage by one run.
func (r *Repository) advanceBucket(ctx context.Context, s Sample, bucket int) error {
	pos, name, err := r.readPosition(ctx)
	if err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrUndecodable) {
		return fmt.Errorf("verify: read the sample position %s: %w", name, err)
	}
	if pos.Next == nil {
		pos.Next = map[string]int{}
	}
	pos.Next[strconv.Itoa(s.Buckets)] = bucket%s.Buckets + 1
	name = positionPrefix + time.Now().UTC().Format("20060102T150405.000000000Z") + "-" + newID()[:8] + ".json"
	if err := r.CreateJSON(ctx, name, pos); err != nil {
		return fmt.Errorf("verify: record the sample position %s (the next run repeats bucket %d): %w", name, bucket, err)
	}
	return nil
}

// readPosition reads the newest position that decodes (newest valid wins: a damaged newest
// one falls back to the one before), or the old single object when there is none. It returns
// the name it read, or tried, for messages.
func (r *Repository) readPosition(ctx context.Context) (verifyPosition, string, error) {
	var names []string
	if err := r.b.List(ctx, positionPrefix, func(o ObjectInfo) error {
		if strings.HasSuffix(o.Name, ".json") {
			names = append(names, o.Name)
		}
		return nil
	}); err != nil {
		return verifyPosition{}, positionPrefix, err
	}
	slices.Sort(names)
	var firstErr error
	for i := len(names) - 1; i >= 0; i-- {
		var pos verifyPosition
		err := r.GetJSON(ctx, names[i], &pos)
		if err == nil {
			return pos, names[i], nil
		}
		if !errors.Is(err, ErrUndecodable) {
			return pos, names[i], err
		}
		firstErr = cmp.Or(firstErr, err)
	}
	if len(names) > 0 {
		return verifyPosition{}, names[len(names)-1], firstErr
	}
	var pos verifyPosition
	return pos, positionName, r.GetJSON(ctx, positionName, &pos)
}
