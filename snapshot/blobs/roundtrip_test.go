package blobs

import (
	"bytes"
	"cmp"
	"context"
	"crypto/md5"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/tracevault/tracevault/snapshot"
	"github.com/tracevault/tracevault/snapshot/store"
)

// scenario is the blob backup and restore contract, run on a directory and on Azurite.
type scenario struct {
	src     Container
	srcURL  string
	cred    Credentials
	repo    *store.Repository
	targets []string // empty containers to restore into
	// workers and packSize default to 3 and 4 MiB: several packs even for a small container.
	workers  int
	packSize int64
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func content(seed uint64, n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, uint64(n)))
	for i := range b {
		b[i] = byte(r.IntN(251))
	}
	return b
}

func put(t *testing.T, c Container, name string, data []byte) {
	t.Helper()
	sum := md5.Sum(data)
	if err := c.Put(context.Background(), name, int64(len(data)), sum[:], bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
}

// contents reads a whole container as name -> md5.
func contents(t *testing.T, c Container) map[string][16]byte {
	t.Helper()
	ctx := context.Background()
	out := map[string][16]byte{}
	if err := c.List(ctx, func(e Entry) error {
		rc, _, err := c.Open(ctx, e.Name)
		if err != nil {
			return err
		}
		defer rc.Close()
		h := md5.New()
		if _, err := io.Copy(h, rc); err != nil {
			return err
		}
		out[e.Name] = [16]byte(h.Sum(nil))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func backup(t testing.TB, s scenario) (*store.Manifest, Section) {
	t.Helper()
	src := &Source{URL: s.srcURL, Credentials: s.cred, PackSize: cmp.Or(s.packSize, 4<<20), Workers: cmp.Or(s.workers, 3), Log: quietLog()}
	m, err := snapshot.Run(context.Background(), s.repo, []snapshot.Source{src}, snapshot.Options{Log: quietLog()})
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	_, sec, ok := listingOf(m)
	if !ok {
		t.Fatalf("snapshot %s has no blob listing", m.ID)
	}
	return m, sec
}

func (s scenario) run(t *testing.T) {
	ctx := context.Background()
	// Sizes: empty, tiny, around a pack boundary, and one over 8 MiB.
	sizes := map[string]int{
		"empty":                     0,
		"events/p1/a.json":          1,
		"events/p1/b.json":          700,
		"events/p1-x/c.json":        4096,
		"events/p1/sub/d.json":      65 << 10,
		"media/p2/image.png":        3<<20 + 17,
		"media/p2/video.mp4":        9<<20 + 3,
		"exports/p1/2026-11.csv":    1 << 20,
		"events/p2/unicode-é-ü.txt": 333,
		"events/p2/100% done.json":  12,
	}
	for i := range 40 {
		sizes[fmt.Sprintf("events/bulk/%03d.json", i)] = 100 + i*37
	}
	want := map[string][16]byte{}
	var total int64
	for name, n := range sizes {
		data := content(uint64(len(name)), n)
		put(t, s.src, name, data)
		want[name] = md5.Sum(data)
		total += int64(n)
	}

	m1, sec1 := backup(t, s)
	if sec1.Blobs != int64(len(sizes)) || sec1.Bytes != total || sec1.NewBlobs != int64(len(sizes)-1) || sec1.NewBytes != total {
		t.Fatalf("first backup: %+v; want %d blobs, %d bytes, all but the empty one read", sec1, len(sizes), total)
	}
	if sec1.Cut.Time.IsZero() || sec1.Cut.Newest == "" {
		t.Fatalf("first backup recorded no cut: %+v", sec1.Cut)
	}

	// Unchanged: nothing read, every pack reused.
	m2, sec2 := backup(t, s)
	if sec2.NewBlobs != 0 || sec2.NewBytes != 0 || sec2.Packs != 0 || sec2.Base != m1.ID {
		t.Fatalf("unchanged container: %+v; want 0 blobs and 0 bytes read, base %s", sec2, m1.ID)
	}
	for _, o := range m2.Objects {
		if o.Kind == KindPack && !o.Reused {
			t.Fatalf("unchanged container stored a new pack %s", o.ID)
		}
	}

	// Delete two, overwrite two, add one: only the three new contents are read.
	for _, name := range []string{"events/p1/a.json", "events/bulk/007.json"} {
		if err := s.removeBlob(name); err != nil {
			t.Fatal(err)
		}
	}
	changed := map[string][]byte{
		"events/p1/b.json":     content(99, 800),
		"events/bulk/010.json": content(98, 10),
		"events/zz-new.json":   content(97, 5000),
	}
	var changedBytes int64
	for name, data := range changed {
		put(t, s.src, name, data)
		changedBytes += int64(len(data))
	}
	_, sec3 := backup(t, s)
	if sec3.NewBlobs != 3 || sec3.NewBytes != changedBytes || sec3.Blobs != int64(len(sizes))-2+1 {
		t.Fatalf("after changes: %+v; want 3 blobs (%d bytes) read of %d", sec3, changedBytes, len(sizes)-1)
	}

	// The first snapshot, into empty containers: every blob, byte for byte.
	for _, target := range s.targets {
		rep, err := Restore(ctx, s.repo, m1, RestoreOptions{URL: target, Credentials: s.cred, Log: quietLog()})
		if err != nil {
			t.Fatalf("restore into %s: %v", target, err)
		}
		if rep.Written != int64(len(sizes)) || rep.Identical != 0 {
			t.Fatalf("restore into %s: %+v", target, rep)
		}
		dst, err := OpenContainer(ctx, target, s.cred, false)
		if err != nil {
			t.Fatal(err)
		}
		assertContents(t, contents(t, dst), want)
		// Again: everything is already there.
		rep, err = Restore(ctx, s.repo, m1, RestoreOptions{URL: target, Credentials: s.cred, Log: quietLog()})
		if err != nil || rep.Identical != int64(len(sizes)) || rep.Written != 0 {
			t.Fatalf("second restore into %s: %+v, %v", target, rep, err)
		}
	}

	// Into the source: the two blobs overwritten since are newer and kept without replace.
	rep, err := Restore(ctx, s.repo, m1, RestoreOptions{Credentials: s.cred, Log: quietLog()})
	if !errors.Is(err, ErrNewerKept) || rep.KeptNewer != 2 || rep.Written != 2 {
		t.Fatalf("restore into the source without replace: %+v, %v; want 2 kept, the 2 deleted written", rep, err)
	}
	if _, err := Restore(ctx, s.repo, m1, RestoreOptions{Credentials: s.cred, Replace: true, Log: quietLog()}); err != nil {
		t.Fatalf("restore with replace: %v", err)
	}
	got := contents(t, s.src)
	delete(got, "events/zz-new.json") // restore adds and replaces; it deletes nothing
	assertContents(t, got, want)
}

func assertContents(t *testing.T, got, want map[string][16]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d blobs, want %d", len(got), len(want))
	}
	for name, sum := range want {
		if got[name] != sum {
			t.Fatalf("blob %s: md5 %x, want %x", name, got[name], sum)
		}
	}
}

func (s scenario) removeBlob(name string) error {
	switch c := s.src.(type) {
	case *dir:
		return os.Remove(filepath.Join(c.path, filepath.FromSlash(name)))
	case *azureContainer:
		_, err := c.c.NewBlobClient(c.prefix+name).Delete(context.Background(), nil)
		return err
	}
	return fmt.Errorf("no delete for %T", s.src)
}

func TestDirectoryRoundTrip(t *testing.T) {
	for _, encrypted := range []bool{false, true} {
		t.Run(fmt.Sprintf("encrypted=%v", encrypted), func(t *testing.T) {
			ctx := context.Background()
			tmp := t.TempDir()
			opts := store.Options{URL: "file://" + filepath.Join(tmp, "repo"), Log: quietLog()}
			if encrypted {
				// X25519, not a passphrase: scrypt per object would make the test slow.
				id, err := age.GenerateX25519Identity()
				if err != nil {
					t.Fatal(err)
				}
				opts.IdentityFile, opts.Recipients = filepath.Join(tmp, "key.txt"), []string{id.Recipient().String()}
				if err := os.WriteFile(opts.IdentityFile, []byte(id.String()+"\n"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			srcDir := filepath.Join(tmp, "src")
			src, err := OpenContainer(ctx, "file://"+srcDir, Credentials{}, true)
			if err != nil {
				t.Fatal(err)
			}
			repo, err := store.Open(ctx, opts)
			if err != nil {
				t.Fatal(err)
			}
			scenario{src: src, srcURL: "file://" + srcDir, repo: repo, targets: []string{"file://" + filepath.Join(tmp, "restored")}}.run(t)
		})
	}
}

// TestDirectoryListsInNameOrder covers the walk's batched reads (a directory larger than one
// batch), the "name/" ordering of subdirectories, and what a listing leaves out.
func TestDirectoryListsInNameOrder(t *testing.T) {
	root := t.TempDir()
	var want []string
	write := func(name string, listed bool) {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(name), 0o644); err != nil {
			t.Fatal(err)
		}
		if listed {
			want = append(want, name)
		}
	}
	for i := range 2500 {
		write(fmt.Sprintf("bulk/%05d.json", i), true)
	}
	for _, name := range []string{"a-c", "a/b", "a/c/d", "a.d", "ab", "bulk-x/y"} {
		write(name, true)
	}
	write("bulk/.tmp-123", false) // a write in progress
	if err := os.Symlink(filepath.Join(root, "ab"), filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	slices.Sort(want)

	c, err := OpenContainer(context.Background(), "file://"+root, Credentials{}, false)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	if err := c.List(context.Background(), func(e Entry) error {
		if e.Size != int64(len(e.Name)) || e.ETag == "" {
			t.Errorf("entry %+v: size or etag wrong", e)
		}
		got = append(got, e.Name)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("listed %d names, want %d in order; first difference near %v", len(got), len(want), firstDiff(got, want))
	}
}

func firstDiff(a, b []string) []string {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return []string{a[i], b[i]}
		}
	}
	return nil
}

// TestReadBack restores a snapshot to nowhere, as a drill does: every blob read and checked,
// nothing written; a manifest whose section disagrees with its listing fails it.
func TestReadBack(t *testing.T) {
	ctx := context.Background()
	tmp := t.TempDir()
	srcDir := filepath.Join(tmp, "src")
	src, err := OpenContainer(ctx, "file://"+srcDir, Credentials{}, true)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 30 {
		put(t, src, fmt.Sprintf("events/%02d.json", i), content(uint64(i), i*1000))
	}
	repo, err := store.Open(ctx, store.Options{URL: "file://" + filepath.Join(tmp, "repo"), Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	m, sec := backup(t, scenario{src: src, srcURL: "file://" + srcDir, repo: repo})
	rep, err := Restore(ctx, repo, m, RestoreOptions{ReadBack: true, Log: quietLog()})
	if err != nil || rep.Written != 30 || rep.Bytes != sec.Bytes || !strings.HasPrefix(rep.Target, "nowhere") {
		t.Fatalf("read back: %+v, %v; want 30 blobs of %d bytes checked", rep, err, sec.Bytes)
	}
	if ents, _ := os.ReadDir(tmp); len(ents) != 2 {
		t.Fatalf("read back wrote something: %v", ents)
	}
	for _, damage := range []func(*Section){func(s *Section) { s.Blobs++ }, func(s *Section) { s.Bytes-- }} {
		forged := *m
		bad := sec
		damage(&bad)
		raw, _ := json.Marshal(bad)
		forged.Sections = map[string]json.RawMessage{Name: raw}
		if _, err := Restore(ctx, repo, &forged, RestoreOptions{ReadBack: true, Log: quietLog()}); err == nil || !strings.Contains(err.Error(), "damaged") {
			t.Fatalf("a section saying %d blobs of %d bytes, the listing %d of %d: %v; want the damage named", bad.Blobs, bad.Bytes, sec.Blobs, sec.Bytes, err)
		}
	}
}
