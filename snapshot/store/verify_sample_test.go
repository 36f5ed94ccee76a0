package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// sampledRepo commits snaps snapshots of perSnap small objects each on a filesystem repository;
// consecutive snapshots share half their objects, as incremental backups do. It returns the
// repository's directory and every distinct object.
func sampledRepo(t *testing.T, snaps, perSnap int) (string, map[string]ObjectRef) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	b, err := NewFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	r := openRepo(t, b, Options{})
	objects := map[string]ObjectRef{}
	var prev []ManifestObject
	for s := 0; s < snaps; s++ {
		objs := append([]ManifestObject(nil), prev[len(prev)/2:]...)
		for len(objs) < perSnap {
			ref, _, err := r.PutObject(ctx, "", strings.NewReader(fmt.Sprintf("snapshot %d object %d", s, len(objs))))
			if err != nil {
				t.Fatal(err)
			}
			objects[ref.Name()] = ref
			objs = append(objs, ManifestObject{ObjectRef: ref, Source: "clickhouse", Database: "langfuse", Table: "traces", Partition: fmt.Sprint(202600 + len(objs))})
		}
		start := time.Date(2026, 11, 1+s, 3, 0, 0, 0, time.UTC)
		m := &Manifest{ID: start.Format("20060102T150405Z") + "-000001", Start: start, Status: StatusComplete, Objects: objs}
		if err := r.CommitManifest(ctx, m); err != nil {
			t.Fatal(err)
		}
		prev = objs
	}
	return dir, objects
}

// reopen opens the repository at dir afresh, as the next run of the command would.
func reopen(t *testing.T, dir string) *Repository {
	r, _ := reopenCounting(t, dir)
	return r
}

// reopenCounting is reopen that also returns which data objects were read, and how often.
func reopenCounting(t *testing.T, dir string) (*Repository, map[string]int) {
	t.Helper()
	b, err := NewFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	c := &countingGets{Backend: b, gets: map[string]int{}}
	return openRepo(t, c, Options{}), c.gets
}

type countingGets struct {
	Backend
	gets map[string]int
}

func (c *countingGets) Get(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	if strings.HasPrefix(name, "data/") {
		c.gets[name]++
	}
	return c.Backend.Get(ctx, name, off, length)
}

func TestParseSample(t *testing.T) {
	tests := []struct {
		in   string
		want Sample
		err  string
	}{
		{"10%", Sample{Buckets: 10}, ""},
		{"33%", Sample{Buckets: 4}, ""},
		{"25%", Sample{Buckets: 4}, ""},
		{"12.5%", Sample{Buckets: 8}, ""},
		{"100%", Sample{Buckets: 1}, ""},
		{" 50% ", Sample{Buckets: 2}, ""},
		{"3/10", Sample{Buckets: 10, Bucket: 3}, ""},
		{"1/1", Sample{Buckets: 1, Bucket: 1}, ""},
		{"10", Sample{}, `give a percentage such as "10%"`},
		{"0%", Sample{}, "0 < P <= 100"},
		{"101%", Sample{}, "0 < P <= 100"},
		{"-5%", Sample{}, "0 < P <= 100"},
		{"NaN%", Sample{}, "0 < P <= 100"},
		{"0.001%", Sample{}, "at most 10000 buckets"},
		{"0/10", Sample{}, "1 <= N <= M"},
		{"11/10", Sample{}, "1 <= N <= M"},
		{"a/b", Sample{}, "1 <= N <= M"},
		{"", Sample{}, "give a percentage"},
	}
	for _, tt := range tests {
		got, err := ParseSample(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseSample(%q) = %+v, %v; want an error containing %q", tt.in, got, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseSample(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

// TestVerifySampleCoversEveryObject runs a rotating sample ⌈100/p⌉ times, reopening the
// repository each run as the command does: every object is read, each run reads about 1/M of
// them, and the rotation wraps to bucket 1 afterwards.
func TestVerifySampleCoversEveryObject(t *testing.T) {
	for _, p := range []string{"10%", "25%", "33%", "50%", "100%"} {
		t.Run(p, func(t *testing.T) {
			ctx := context.Background()
			dir, objects := sampledRepo(t, 6, 80)
			n := len(objects)
			s, err := ParseSample(p)
			if err != nil {
				t.Fatal(err)
			}
			m := s.Buckets
			mean := float64(n) / float64(m)
			// Ids are random, so bucket sizes are binomial: 6 standard deviations never fail by chance.
			slack := 6*math.Sqrt(mean*(1-1/float64(m))) + 1
			seen := map[string]int{}
			for run := 1; run <= m; run++ {
				r, gets := reopenCounting(t, dir)
				rep, err := r.VerifyWith(ctx, nil, VerifyOptions{ReadData: true, Sample: s})
				if err != nil || len(rep.Problems) != 0 {
					t.Fatalf("run %d: %+v %v", run, rep.Problems, err)
				}
				if rep.Sample == nil || rep.Sample.Bucket != run || rep.Sample.Buckets != m || !rep.Sample.Rotating {
					t.Fatalf("run %d read bucket %+v; want %d of %d, rotating", run, rep.Sample, run, m)
				}
				if rep.Objects != n || rep.Snapshots != 6 {
					t.Errorf("run %d checked %d objects of %d snapshots; want all %d (deduplicated) of 6", run, rep.Objects, rep.Snapshots, n)
				}
				if len(gets) != rep.ObjectsRead || math.Abs(float64(len(gets))-mean) > slack {
					t.Errorf("run %d read %d objects, reported %d; want about %.0f (±%.0f)", run, len(gets), rep.ObjectsRead, mean, slack)
				}
				for name := range gets {
					seen[name]++
				}
				if m == 1 && rep.ObjectsRead != n {
					t.Errorf("100%%: read %d objects, want all %d", rep.ObjectsRead, n)
				}
			}
			for name := range objects {
				if seen[name] != 1 {
					t.Errorf("object %s was read in %d of %d runs; want exactly 1", name, seen[name], m)
				}
			}
			if len(seen) != n {
				t.Errorf("%d distinct objects read; the repository holds %d", len(seen), n)
			}
			total := 0
			for run := 1; run <= m; run++ {
				rep, _ := reopen(t, dir).VerifyWith(ctx, nil, VerifyOptions{ReadData: true, Sample: Sample{Buckets: m, Bucket: run}})
				total += rep.ObjectsRead
			}
			if total != n {
				t.Errorf("the %d buckets read %d objects in all; want each of the %d once", m, total, n)
			}
			rep, err := reopen(t, dir).VerifyWith(ctx, nil, VerifyOptions{ReadData: true, Sample: s})
			if err != nil || rep.Sample.Bucket != 1 {
				t.Errorf("run %d after a full rotation read bucket %+v, %v; want 1 (the rotation wraps)", m+1, rep.Sample, err)
			}
		})
	}
}

// TestVerifySampleFindsCorruption flips a byte in one object: only the run whose bucket holds
// it reads it, and that run names it with what it holds.
func TestVerifySampleFindsCorruption(t *testing.T) {
	ctx := context.Background()
	dir, objects := sampledRepo(t, 3, 40)
	var bad ObjectRef
	for _, ref := range objects {
		bad = ref
		break
	}
	p := filepath.Join(dir, filepath.FromSlash(bad.Name()))
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)/2] ^= 0x01
	if err := os.WriteFile(p, raw, 0o640); err != nil {
		t.Fatal(err)
	}
	s := Sample{Buckets: 5}
	found := 0
	for run := 1; run <= s.Buckets; run++ {
		rep, err := reopen(t, dir).VerifyWith(ctx, nil, VerifyOptions{ReadData: true, Sample: s})
		if err != nil {
			t.Fatal(err)
		}
		holds := s.Holds(bad.ID, rep.Sample.Bucket)
		if !holds {
			if len(rep.Problems) != 0 {
				t.Errorf("bucket %d does not hold %s but reported %+v", rep.Sample.Bucket, bad.Name(), rep.Problems)
			}
			continue
		}
		found++
		if len(rep.Problems) == 0 {
			t.Fatalf("bucket %d holds the damaged %s but found nothing", rep.Sample.Bucket, bad.Name())
		}
		for _, pr := range rep.Problems {
			if pr.Object != bad.Name() || !strings.HasPrefix(pr.What, "clickhouse langfuse traces ") || pr.Snapshot == "" {
				t.Errorf("problem %+v; want %s named with its snapshot and table", pr, bad.Name())
			}
		}
	}
	if found != 1 {
		t.Errorf("the damaged object was in %d of %d runs' buckets; want exactly 1", found, s.Buckets)
	}
}

// TestVerifySamplePosition: the rotation survives reopening, each bucket count keeps its own
// place, a fixed N/M neither reads nor moves the rotation, an interrupted run does not advance
// it, and a damaged position restarts it instead of failing verify.
func TestVerifySamplePosition(t *testing.T) {
	ctx := context.Background()
	dir, _ := sampledRepo(t, 2, 10)
	bucketOf := func(s Sample) int {
		t.Helper()
		rep, err := reopen(t, dir).VerifyWith(ctx, nil, VerifyOptions{ReadData: true, Sample: s})
		if err != nil {
			t.Fatal(err)
		}
		return rep.Sample.Bucket
	}
	steps := []struct {
		sample Sample
		want   int
	}{
		{Sample{Buckets: 3}, 1},
		{Sample{Buckets: 3}, 2},
		{Sample{Buckets: 4}, 1}, // another size has its own place
		{Sample{Buckets: 3, Bucket: 1}, 1},
		{Sample{Buckets: 3}, 3}, // the fixed bucket did not move the rotation
		{Sample{Buckets: 3}, 1},
		{Sample{Buckets: 4}, 2},
	}
	for i, st := range steps {
		if got := bucketOf(st.sample); got != st.want {
			t.Errorf("step %d (%+v): read bucket %d, want %d", i, st.sample, got, st.want)
		}
	}

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := reopen(t, dir).VerifyWith(cancelled, nil, VerifyOptions{ReadData: true, Sample: Sample{Buckets: 3}}); err == nil {
		t.Error("a cancelled verify returned no error")
	}
	if got := bucketOf(Sample{Buckets: 3}); got != 2 {
		t.Errorf("after a cancelled run: bucket %d, want 2 (an unfinished run does not advance)", got)
	}

	// Every position damaged (the newest alone would fall back to the one before it).
	positions, err := filepath.Glob(filepath.Join(dir, "verify", "positions", "*.json"))
	if err != nil || len(positions) == 0 {
		t.Fatalf("positions written: %v, %v", positions, err)
	}
	for _, p := range positions {
		if err := os.WriteFile(p, []byte("not a position"), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	if got := bucketOf(Sample{Buckets: 3}); got != 1 {
		t.Errorf("after damage to the position: bucket %d, want the rotation restarted at 1", got)
	}
	if got := bucketOf(Sample{Buckets: 3}); got != 2 {
		t.Errorf("after the restart: bucket %d, want 2", got)
	}

	b, err := NewFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := openRepo(t, readOnlyPosition{b}, Options{}).VerifyWith(ctx, nil, VerifyOptions{ReadData: true, Sample: Sample{Buckets: 3}})
	if err != nil || rep.Sample.Bucket != 3 || !strings.Contains(rep.Sample.PositionError, "read-only") {
		t.Errorf("with a position that cannot be written: %+v sample %+v, %v; want the run's report with the reason", rep, rep.Sample, err)
	}
	if got := bucketOf(Sample{Buckets: 3}); got != 3 {
		t.Errorf("after a run that could not record its place: bucket %d, want 3 again", got)
	}

	if _, err := reopen(t, dir).VerifyWith(ctx, nil, VerifyOptions{ReadData: true, Sample: Sample{Buckets: 3, Bucket: 4}}); err == nil {
		t.Error("bucket 4 of 3 was accepted")
	}
}

// readOnlyPosition refuses to write the sample position, as read-only credentials would.
type readOnlyPosition struct{ Backend }

func (b readOnlyPosition) Put(ctx context.Context, name string, r io.Reader) (int64, error) {
	if name == positionName || strings.HasPrefix(name, positionPrefix) {
		return 0, errors.New("read-only credentials")
	}
	return b.Backend.Put(ctx, name, r)
}

func (b readOnlyPosition) Create(ctx context.Context, name string, r io.Reader) (int64, error) {
	if strings.HasPrefix(name, positionPrefix) {
		return 0, errors.New("read-only credentials")
	}
	return b.Backend.Create(ctx, name, r)
}

// TestVerifyContentChecks: a content check's verdict is the object's problem; a check that
// stops early still has the object's SHA-256 compared (drained), and damage in the repository
// is reported as a read error, not as what the content check made of it; a snapshot whose
// checks cannot be chosen is named.
func TestVerifyContentChecks(t *testing.T) {
	ctx := context.Background()
	dir, objects := sampledRepo(t, 1, 4)
	var refs []ObjectRef
	for _, ref := range objects {
		refs = append(refs, ref)
	}
	damaged := refs[3]
	p := filepath.Join(dir, filepath.FromSlash(damaged.Name()))
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)/2] ^= 0x01
	if err := os.WriteFile(p, raw, 0o640); err != nil {
		t.Fatal(err)
	}
	readAll := func(_ context.Context, r io.Reader) error {
		b, err := io.ReadAll(r)
		if err == nil && !strings.HasPrefix(string(b), "snapshot 0 object") {
			return fmt.Errorf("content %q", b)
		}
		return err
	}
	badContent := func(_ context.Context, r io.Reader) error {
		_, _ = io.ReadFull(r, make([]byte, 3))
		return errors.New("part 1_1_1_0: file x.bin differs")
	}
	checks := map[string]ContentCheck{refs[0].ID: readAll, refs[1].ID: badContent, damaged.ID: badContent}
	rep, err := reopen(t, dir).VerifyWith(ctx, nil, VerifyOptions{ReadData: true,
		Content: func(*Manifest) (map[string]ContentCheck, error) { return checks, nil }})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, pr := range rep.Problems {
		got[pr.Object] = pr.Error
	}
	if len(got) != 2 || got[refs[1].Name()] != "part 1_1_1_0: file x.bin differs" || got[damaged.Name()] == "" || strings.Contains(got[damaged.Name()], "x.bin") {
		t.Errorf("problems %+v: want %s's content error and %s's read error", rep.Problems, refs[1].Name(), damaged.Name())
	}
	if rep.ObjectsRead != 4 || rep.BytesRead == 0 {
		t.Errorf("read %d objects, %d bytes", rep.ObjectsRead, rep.BytesRead)
	}

	rep, err = reopen(t, dir).VerifyWith(ctx, nil, VerifyOptions{ReadData: true,
		Content: func(m *Manifest) (map[string]ContentCheck, error) {
			return nil, fmt.Errorf("read clickhouse section of %s: bad", m.ID)
		}})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) != 2 || rep.Problems[0].What != "manifest" || !strings.HasPrefix(rep.Problems[0].Object, "snapshots/") {
		t.Errorf("problems %+v: want the snapshot's section problem first, then the damaged object", rep.Problems)
	}
	// Without read-data nothing is read, so no content is checked.
	rep, err = reopen(t, dir).VerifyWith(ctx, nil, VerifyOptions{Content: func(*Manifest) (map[string]ContentCheck, error) {
		t.Error("content checks chosen without read-data")
		return nil, nil
	}})
	if err != nil || len(rep.Problems) != 0 {
		t.Errorf("existence-only verify: %v %+v", err, rep.Problems)
	}
}
