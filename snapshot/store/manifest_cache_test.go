package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// fullManifest is a valid manifest with every slice, map and pointer field non-empty, down to
// the fields of what they hold: TestManifestFixtureIsFull keeps it so.
func fullManifest(id string) *Manifest {
	t := time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC)
	return &Manifest{
		ID: id, Start: t, End: t.Add(time.Minute), Status: StatusComplete, Host: "backup-1",
		Tags:       []string{"nightly", "before-upgrade"},
		Components: []Component{{Source: "clickhouse", Start: t, End: t.Add(time.Minute), Status: StatusComplete}},
		Scope: &Scope{Sources: []string{"clickhouse", "postgres"}, Narrowed: []string{"clickhouse"},
			Databases: []string{"default"}, Tables: []string{"default.traces"}, Exclude: []string{"default.tmp_*"},
			PostgresDatabase: "langfuse"},
		Cut:      &Cut{Time: t, SkewSeconds: 0.5, Sources: []SourceCut{{Source: "postgres", Time: t, Position: "0/16B3748"}}},
		Sections: map[string]json.RawMessage{"clickhouse": json.RawMessage(`{"tables":["default.traces"]}`)},
		Objects: []ManifestObject{{ObjectRef: ObjectRef{ID: strings.Repeat("ab", 16), Size: 10, RawSize: 20, SHA256: sha0, Fingerprint: "fp"},
			Source: "clickhouse", Kind: "partition", Database: "default", Table: "traces", Partition: "202612", Rows: 3}},
		Auth: []ManifestMAC{{Key: "passphrase", MAC: "00"}},
	}
}

// emptyReferences names every slice, map and pointer reachable from v (recursively) that is
// nil or empty. Strings and times are values, copied with the struct that holds them.
func emptyReferences(path string, v reflect.Value) []string {
	if v.Type() == reflect.TypeFor[time.Time]() {
		return nil
	}
	var out []string
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return []string{path}
		}
		return emptyReferences(path, v.Elem())
	case reflect.Slice, reflect.Map:
		if v.Len() == 0 {
			return []string{path}
		}
		if v.Kind() == reflect.Map {
			for _, k := range v.MapKeys() {
				out = append(out, emptyReferences(fmt.Sprintf("%s[%v]", path, k), v.MapIndex(k))...)
			}
			return out
		}
		for i := range v.Len() {
			out = append(out, emptyReferences(fmt.Sprintf("%s[%d]", path, i), v.Index(i))...)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			out = append(out, emptyReferences(path+"."+v.Type().Field(i).Name, v.Field(i))...)
		}
	case reflect.Interface, reflect.Chan, reflect.Func, reflect.UnsafePointer:
		out = append(out, path+" (a "+v.Kind().String()+": clone cannot copy it; extend clone and this test)")
	}
	return out
}

// sharedReferences names every slice backing array, map and pointer that a and b (of one
// type) share, recursively.
func sharedReferences(path string, a, b reflect.Value) []string {
	if a.Type() == reflect.TypeFor[time.Time]() {
		return nil
	}
	var out []string
	switch a.Kind() {
	case reflect.Pointer:
		if a.IsNil() || b.IsNil() {
			return nil
		}
		if a.Pointer() == b.Pointer() {
			out = append(out, path)
		}
		return append(out, sharedReferences(path, a.Elem(), b.Elem())...)
	case reflect.Map:
		if a.Len() > 0 && a.Pointer() == b.Pointer() {
			out = append(out, path)
		}
		for _, k := range a.MapKeys() {
			if bv := b.MapIndex(k); bv.IsValid() {
				out = append(out, sharedReferences(fmt.Sprintf("%s[%v]", path, k), a.MapIndex(k), bv)...)
			}
		}
	case reflect.Slice:
		if a.Cap() > 0 && b.Cap() > 0 && a.Pointer() == b.Pointer() {
			out = append(out, path)
		}
		for i := range min(a.Len(), b.Len()) {
			out = append(out, sharedReferences(fmt.Sprintf("%s[%d]", path, i), a.Index(i), b.Index(i))...)
		}
	case reflect.Struct:
		for i := range a.NumField() {
			out = append(out, sharedReferences(path+"."+a.Type().Field(i).Name, a.Field(i), b.Field(i))...)
		}
	}
	return out
}

// TestManifestFixtureIsFull: a field added to Manifest (or to anything it holds) must be filled
// in fullManifest, so that TestManifestCloneSharesNothing checks that clone copies it.
func TestManifestFixtureIsFull(t *testing.T) {
	if empty := emptyReferences("Manifest", reflect.ValueOf(fullManifest("20261201T030000Z-abcdef")).Elem()); len(empty) > 0 {
		t.Fatalf("fullManifest leaves these empty; fill them (and make clone copy them): %s", strings.Join(empty, ", "))
	}
}

// TestManifestCloneSharesNothing: what Catalog hands out is a copy a caller may change at will.
func TestManifestCloneSharesNothing(t *testing.T) {
	tests := []struct {
		name string
		m    *Manifest
	}{
		{"full", fullManifest("20261201T030000Z-abcdef")},
		{"sparse", &Manifest{ID: "20261201T030000Z-abcdef", Status: StatusPartial}},
		{"empty, not nil", &Manifest{Tags: []string{}, Components: []Component{}, Scope: &Scope{}, Cut: &Cut{},
			Sections: map[string]json.RawMessage{"x": {}}, Objects: []ManifestObject{}, Auth: []ManifestMAC{}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.m.clone()
			if !reflect.DeepEqual(&c, tc.m) {
				t.Fatalf("clone differs from the original:\n%+v\n%+v", c, *tc.m)
			}
			if shared := sharedReferences("Manifest", reflect.ValueOf(tc.m).Elem(), reflect.ValueOf(&c).Elem()); len(shared) > 0 {
				t.Fatalf("clone shares these with the original: %s", strings.Join(shared, ", "))
			}
		})
	}
}

// catalogRepo is a repository on a directory whose manifest reads are counted.
type catalogRepo struct {
	dir   string
	reads *countingManifests
	r     *Repository
}

func newCatalogRepo(t *testing.T, opts Options) *catalogRepo {
	t.Helper()
	dir := t.TempDir()
	fsb, err := NewFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	c := &countingManifests{Backend: fsb, reads: map[string]int{}}
	return &catalogRepo{dir: dir, reads: c, r: openRepo(t, c, opts)}
}

func (h *catalogRepo) commit(t *testing.T, m *Manifest) {
	t.Helper()
	if err := h.r.CommitManifest(context.Background(), m); err != nil {
		t.Fatal(err)
	}
}

func (h *catalogRepo) file(id string) string { return filepath.Join(h.dir, "snapshots", id+".json") }

// describe is a catalog as a test expects it: each snapshot's id with its tags, then each
// damaged manifest.
func describe(c Catalog) []string {
	var out []string
	for _, m := range c.Snapshots {
		out = append(out, strings.TrimSpace(m.ID+" "+strings.Join(m.Tags, ",")))
	}
	for _, d := range c.Damaged {
		out = append(out, "damaged "+d.Name)
	}
	return out
}

// TestCatalogReadsOnlyNewOrChangedManifests: a repeated catalog reads no manifest; a new, a
// damaged or a replaced one is read once; a deleted one leaves the catalog and the cache.
func TestCatalogReadsOnlyNewOrChangedManifests(t *testing.T) {
	ctx := context.Background()
	h := newCatalogRepo(t, Options{})
	ids := []string{"20261201T000000Z-000001", "20261201T010000Z-000002", "20261201T020000Z-000003", "20261201T030000Z-000004"}
	const broken = "20261201T040000Z-000005"
	snap := func(id string, tags ...string) *Manifest {
		start := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
		return &Manifest{ID: id, Start: start, End: start.Add(time.Minute), Status: StatusComplete, Tags: tags}
	}
	for _, id := range ids[:3] {
		h.commit(t, snap(id, "qzxv"))
	}
	// rewrite replaces a manifest's bytes behind the repository's back, then moves its
	// modification time by mtime (0: keeps it, so that only a size can tell). sameSize says
	// whether the fixture must keep the size (so that only the time can tell).
	rewrite := func(m *Manifest, mtime time.Duration, sameSize bool) func(t *testing.T) {
		return func(t *testing.T) {
			before, err := os.Stat(h.file(m.ID))
			if err != nil {
				t.Fatal(err)
			}
			if err := h.r.PutJSON(ctx, manifestName(m.ID), m); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(h.file(m.ID), before.ModTime(), before.ModTime().Add(mtime)); err != nil {
				t.Fatal(err)
			}
			after, err := os.Stat(h.file(m.ID))
			if err != nil {
				t.Fatal(err)
			}
			if (after.Size() == before.Size()) != sameSize {
				t.Fatalf("the fixture's rewrite changed the size from %d to %d: pick other tags", before.Size(), after.Size())
			}
		}
	}
	a := func(id string) string { return id + " qzxv" }
	damaged := "damaged " + manifestName(broken)
	steps := []struct {
		name   string
		change func(t *testing.T)
		reads  []string // manifests read, once each
		want   []string // describe's answer
	}{
		{name: "first", reads: ids[:3], want: []string{a(ids[0]), a(ids[1]), a(ids[2])}},
		{name: "repeated", want: []string{a(ids[0]), a(ids[1]), a(ids[2])}},
		{name: "a new snapshot", change: func(t *testing.T) { h.commit(t, snap(ids[3], "qzxv")) }, reads: ids[3:4],
			want: []string{a(ids[0]), a(ids[1]), a(ids[2]), a(ids[3])}},
		{name: "a deleted snapshot", change: func(t *testing.T) {
			if err := h.r.DeleteSnapshot(ctx, ids[0]); err != nil {
				t.Fatal(err)
			}
		}, want: []string{a(ids[1]), a(ids[2]), a(ids[3])}},
		{name: "a damaged manifest", change: func(t *testing.T) {
			if err := os.WriteFile(h.file(broken), testData(512, 3), 0o600); err != nil {
				t.Fatal(err)
			}
		}, reads: []string{broken}, want: []string{a(ids[1]), a(ids[2]), a(ids[3]), damaged}},
		{name: "the damaged manifest again", want: []string{a(ids[1]), a(ids[2]), a(ids[3]), damaged}},
		{name: "replaced, same size, a later modification time", change: rewrite(snap(ids[1], "vxzq"), time.Minute, true),
			reads: ids[1:2], want: []string{ids[1] + " vxzq", a(ids[2]), a(ids[3]), damaged}},
		{name: "replaced, same modification time, another size", change: rewrite(snap(ids[2], "a-longer-tag"), 0, false),
			reads: ids[2:3], want: []string{ids[1] + " vxzq", ids[2] + " a-longer-tag", a(ids[3]), damaged}},
		{name: "the damaged manifest removed", change: func(t *testing.T) {
			if err := h.r.DeleteDamaged(ctx, broken+".json"); err != nil {
				t.Fatal(err)
			}
		}, want: []string{ids[1] + " vxzq", ids[2] + " a-longer-tag", a(ids[3])}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if st.change != nil {
				st.change(t)
			}
			h.reads.take()
			c, err := h.r.Catalog(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if got := describe(c); !slices.Equal(got, st.want) {
				t.Errorf("catalog %q; want %q", got, st.want)
			}
			want := map[string]int{}
			for _, id := range st.reads {
				want[manifestName(id)] = 1
			}
			if got := h.reads.take(); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("read %v; want %v", got, want)
			}
			if n := h.r.manifests.len(); n != len(st.want) {
				t.Errorf("the cache holds %d manifests; want the %d listed", n, len(st.want))
			}
		})
	}
}

// TestCatalogCopiesAreTheCallers: whatever a caller does to the manifests Catalog (or
// Snapshot) returned, the next answer is what the repository holds.
func TestCatalogCopiesAreTheCallers(t *testing.T) {
	ctx := context.Background()
	h := newCatalogRepo(t, Options{Passphrase: "correct horse battery staple"}) // so Auth is set
	h.commit(t, fullManifest("20261201T030000Z-abcdef"))
	first, err := h.r.Catalog(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(first)
	if empty := emptyReferences("Manifest", reflect.ValueOf(first.Snapshots[0])); len(empty) > 0 {
		t.Fatalf("the stored manifest lost %s on the way", strings.Join(empty, ", "))
	}
	vandalize := func(m *Manifest) {
		m.ID, m.Tags[0] = "x", "x"
		m.Components[0].Source = "x"
		m.Scope.Sources[0], m.Scope.Exclude[0] = "x", "x"
		m.Cut.Time, m.Cut.Sources[0].Position = time.Time{}, "x"
		m.Sections["clickhouse"][2] = 'X'
		m.Sections["new"] = json.RawMessage(`1`)
		m.Objects[0].ID, m.Objects[0].Rows = "x", -1
		m.Auth[0].MAC = "x"
		m.Tags = append(m.Tags[:1], "appended")
	}
	for _, tc := range []struct {
		name string
		id   string // the snapshot the caller looks up and changes; "" changes the catalog's copy
	}{
		{"catalog", ""},
		{"snapshot by id", "20261201T030000Z-abcdef"},
		{"latest", "latest"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h.reads.take()
			c, err := h.r.Catalog(ctx)
			if err != nil {
				t.Fatal(err)
			}
			m := &c.Snapshots[0]
			if tc.id != "" {
				if m, err = h.r.Snapshot(ctx, tc.id); err != nil {
					t.Fatal(err)
				}
			}
			vandalize(m)
			again, err := h.r.Catalog(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := json.Marshal(again); string(got) != string(want) {
				t.Errorf("the catalog after a caller changed its copy:\n%s\nwant\n%s", got, want)
			}
			if reads := h.reads.take(); len(reads) != 0 {
				t.Errorf("read %v; want the cached manifest", reads)
			}
		})
	}
}

// failingGetsFake fails the reads of one object as an unreachable storage does.
type failingGetsFake struct {
	*countingManifests
	mu   sync.Mutex
	fail string
}

var errUnreachable = errors.New("dial tcp: connection refused")

func (f *failingGetsFake) Get(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	f.mu.Lock()
	fail := name == f.fail
	f.mu.Unlock()
	if fail {
		return nil, errUnreachable
	}
	return f.countingManifests.Get(ctx, name, off, length)
}

// TestCatalogNeverCachesTransportErrorsFake: a manifest the storage failed to serve fails the
// catalog, and is read again next time, not remembered as damaged.
func TestCatalogNeverCachesTransportErrorsFake(t *testing.T) {
	ctx := context.Background()
	fsb, err := NewFS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f := &failingGetsFake{countingManifests: &countingManifests{Backend: fsb, reads: map[string]int{}}}
	r := openRepo(t, f, Options{})
	ids := []string{"20261201T000000Z-000001", "20261201T010000Z-000002"}
	for _, id := range ids {
		if err := r.CommitManifest(ctx, &Manifest{ID: id, Status: StatusComplete}); err != nil {
			t.Fatal(err)
		}
	}
	f.fail = manifestName(ids[1])
	if _, err := r.Catalog(ctx); !errors.Is(err, errUnreachable) || !strings.Contains(err.Error(), manifestName(ids[1])) {
		t.Fatalf("catalog while a manifest cannot be read: %v; want the storage's error naming it", err)
	}
	f.mu.Lock()
	f.fail = ""
	f.mu.Unlock()
	f.take()
	c, err := r.Catalog(ctx)
	if err != nil || !slices.Equal(describe(c), ids) {
		t.Fatalf("catalog once the storage answers: %q, %v; want %q", describe(c), err, ids)
	}
	if got := f.take(); fmt.Sprint(got) != fmt.Sprint(map[string]int{manifestName(ids[1]): 1}) {
		t.Errorf("read %v; want only the manifest that failed, again", got)
	}
}

// TestVerifyReadsManifestsAfresh: damage that keeps a manifest's size and modification time (a
// filesystem's bit rot) is beyond the catalog's cache, but verify reads the manifests afresh and
// finds it, and from then on the catalog lists it as damaged.
func TestVerifyReadsManifestsAfresh(t *testing.T) {
	ctx := context.Background()
	ids := []string{"20261201T000000Z-000001", "20261201T010000Z-000002"}
	tests := []struct {
		name   string
		verify func(r *Repository) error // fails unless verify found the damage
	}{
		{"verify --all", func(r *Repository) error {
			rep, err := r.Verify(ctx, nil, false)
			if err != nil || len(rep.Problems) != 1 || rep.Problems[0].Object != manifestName(ids[1]) {
				return fmt.Errorf("verify: %+v, %v; want %s named as damaged", rep.Problems, err, manifestName(ids[1]))
			}
			return nil
		}},
		{"verify ID", func(r *Repository) error {
			if _, err := r.Verify(ctx, []string{ids[1]}, false); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "1 damaged") {
				return fmt.Errorf("verify of the rotten snapshot: %v; want it not found, with a damaged manifest counted", err)
			}
			return nil
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newCatalogRepo(t, Options{})
			for _, id := range ids {
				h.commit(t, &Manifest{ID: id, Status: StatusComplete})
			}
			if c, err := h.r.Catalog(ctx); err != nil || len(c.Snapshots) != 2 {
				t.Fatalf("catalog: %q, %v", describe(c), err)
			}
			fi, err := os.Stat(h.file(ids[1]))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(h.file(ids[1]), testData(int(fi.Size()), 5), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(h.file(ids[1]), fi.ModTime(), fi.ModTime()); err != nil {
				t.Fatal(err)
			}
			if c, err := h.r.Catalog(ctx); err != nil || len(c.Snapshots) != 2 {
				t.Fatalf("catalog before verify: %q, %v; want the cached answer (the test would prove nothing)", describe(c), err)
			}
			if err := tc.verify(h.r); err != nil {
				t.Error(err)
			}
			c, err := h.r.Catalog(ctx)
			if want := []string{ids[0], "damaged " + manifestName(ids[1])}; err != nil || !slices.Equal(describe(c), want) {
				t.Errorf("catalog after verify: %q, %v; want %q", describe(c), err, want)
			}
		})
	}
}

// TestCatalogConcurrentReaders: the status page and a backup read the catalog while snapshots
// are committed and deleted; run with -race.
func TestCatalogConcurrentReaders(t *testing.T) {
	ctx := context.Background()
	h := newCatalogRepo(t, Options{})
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				c, err := h.r.Catalog(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				for i := range c.Snapshots {
					c.Snapshots[i].Tags[0] = "changed by a reader" // never seen by another
				}
			}
		}()
	}
	for i := range 20 {
		id := fmt.Sprintf("20261201T0000%02dZ-000001", i)
		h.commit(t, &Manifest{ID: id, Status: StatusComplete, Tags: []string{"t"}})
		if i%3 == 0 {
			if err := h.r.DeleteSnapshot(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
	}
	close(stop)
	wg.Wait()
	c, err := h.r.Catalog(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Snapshots) != 13 {
		t.Errorf("%d snapshots; want 13", len(c.Snapshots))
	}
	for _, m := range c.Snapshots {
		if !slices.Equal(m.Tags, []string{"t"}) {
			t.Errorf("%s has tags %q: a reader's change reached the cache", m.ID, m.Tags)
		}
	}
}
