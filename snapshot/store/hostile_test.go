package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/tracevault/tracevault/internal/devstack"
)

// The repository is a trust boundary: these tests write into it what an attacker, or damage,
// could, and check that nothing outside the repository is touched, nothing panics, every bad
// manifest is named, and the good snapshots still list, verify, prune and read.

// hostileRepo is a fresh repository with two good complete snapshots, each with one object of
// its own. On the filesystem it sits in parent/repo, beside sentinel files a crafted name
// would reach: parent/x.json ("../../x" as a snapshot id) and parent/victim/secret ("../victim/secret"
// as an object id).
type hostileRepo struct {
	r         *Repository
	b         Backend
	good      []*Manifest
	sentinels []string // files outside the repository that must survive
}

func newHostileRepo(t *testing.T, bc backendCase, opts Options) *hostileRepo {
	t.Helper()
	ctx := context.Background()
	h := &hostileRepo{}
	if bc.name == "fs" {
		parent := t.TempDir()
		b, err := NewFS(filepath.Join(parent, "repo"))
		if err != nil {
			t.Fatal(err)
		}
		h.b = b
		for _, p := range []string{filepath.Join(parent, "x.json"), filepath.Join(parent, "victim", "secret")} {
			_ = os.MkdirAll(filepath.Dir(p), 0o750)
			if err := os.WriteFile(p, []byte("sentinel"), 0o600); err != nil {
				t.Fatal(err)
			}
			h.sentinels = append(h.sentinels, p)
		}
	} else {
		h.b = bc.open(t, AzureOptions{BlockSize: 1 << 20})
	}
	h.r = openRepo(t, h.b, opts)
	base := time.Date(2026, 11, 20, 3, 0, 0, 0, time.UTC)
	for i := range 2 {
		ref, _, err := h.r.PutObject(ctx, "", bytes.NewReader(testData(64<<10, uint64(10+i))))
		if err != nil {
			t.Fatal(err)
		}
		m := &Manifest{ID: fmt.Sprintf("%sZ-00000%d", base.Add(time.Duration(i)*24*time.Hour).Format("20060102T150405"), i),
			Start: base.Add(time.Duration(i) * 24 * time.Hour), Status: StatusComplete,
			Objects: []ManifestObject{{ObjectRef: ref, Source: "clickhouse", Database: "default", Table: "traces", Partition: fmt.Sprint(202611 + i)}}}
		if err := h.r.CommitManifest(ctx, m); err != nil {
			t.Fatal(err)
		}
		h.good = append(h.good, m)
	}
	return h
}

func (h *hostileRepo) checkSentinels(t *testing.T) {
	t.Helper()
	if len(h.sentinels) == 0 {
		return
	}
	for _, p := range h.sentinels {
		if b, err := os.ReadFile(p); err != nil || string(b) != "sentinel" {
			t.Errorf("%s outside the repository was touched: %q, %v", p, b, err)
		}
	}
	// Nothing was created beside the repository either.
	parent := filepath.Dir(filepath.Dir(h.sentinels[1]))
	var found []string
	_ = filepath.WalkDir(parent, func(p string, d os.DirEntry, err error) error {
		if rel, _ := filepath.Rel(parent, p); rel == "repo" {
			return filepath.SkipDir
		} else if err == nil && !d.IsDir() {
			found = append(found, rel)
		}
		return nil
	})
	if strings.Join(found, " ") != "victim/secret x.json" {
		t.Errorf("outside the repository: %v; want only the two sentinels", found)
	}
}

// craftedManifest is a manifest as an attacker writes it, bypassing CommitManifest's checks.
func craftedManifest(id string, objs ...ObjectRef) *Manifest {
	m := &Manifest{ID: id, Start: time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC), Status: StatusComplete}
	for _, o := range objs {
		m.Objects = append(m.Objects, ManifestObject{ObjectRef: o, Source: "clickhouse"})
	}
	return m
}

const sha0 = "0000000000000000000000000000000000000000000000000000000000000000"

func TestHostileManifests(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name string
		file string // under snapshots/
		put  func(t *testing.T, h *hostileRepo, name string)
		want string // in the damaged manifest's error
	}{
		{"snapshot id leaves the repository", "evil.json", putJSON(craftedManifest("../../x")), "invalid id"},
		{"object id leaves the repository", "20261125T000000Z-aaaaaa.json",
			putJSON(craftedManifest("20261125T000000Z-aaaaaa", ObjectRef{ID: "../victim/secret", SHA256: sha0})), "invalid id"},
		{"one-character object id", "20261125T000000Z-bbbbbb.json",
			putJSON(craftedManifest("20261125T000000Z-bbbbbb", ObjectRef{ID: "a", SHA256: sha0})), "invalid id"},
		{"id does not match its file", "20261125T000000Z-cccccc.json",
			// A copy of a good manifest under another name: acting on it would delete the original.
			func(t *testing.T, h *hostileRepo, name string) { putJSON(h.good[0])(t, h, name) }, "whose manifest is"},
		{"bad checksum form", "20261125T000000Z-dddddd.json",
			putJSON(craftedManifest("20261125T000000Z-dddddd", ObjectRef{ID: strings.Repeat("ab", 16), SHA256: "../x"})), "not what tracevault writes"},
		{"random bytes", "20261125T000000Z-eeeeee.json", putRaw(testData(4096, 7)), ""},
		{"compressed, not JSON", "20261125T000000Z-ffffff.json", func(t *testing.T, h *hostileRepo, name string) {
			if err := h.r.PutJSON(ctx, name, "just a string"); err != nil {
				t.Fatal(err)
			}
		}, "not a manifest"},
		{"empty file", "20261125T000000Z-000000.json", putRaw(nil), ""},
	}
	for _, bc := range backendCases {
		for _, tc := range cases {
			t.Run(bc.name+"/"+tc.name, func(t *testing.T) {
				h := newHostileRepo(t, bc, Options{})
				name := "snapshots/" + tc.file
				tc.put(t, h, name)
				r := h.r
				newest := h.good[1]

				cat, err := r.Catalog(ctx)
				if err != nil {
					t.Fatalf("catalog: %v", err)
				}
				if len(cat.Snapshots) != 2 || len(cat.Damaged) != 1 || cat.Damaged[0].Name != name || !strings.Contains(cat.Damaged[0].Error, tc.want) {
					t.Fatalf("catalog: %d good, damaged %+v; want 2 good and %s damaged (%q)", len(cat.Snapshots), cat.Damaged, name, tc.want)
				}
				if m, err := r.Snapshot(ctx, "latest"); err != nil || m.ID != newest.ID {
					t.Errorf("latest: %v, %v; want %s", m, err, newest.ID)
				}
				// Restore reads the good snapshot's objects.
				if _, err := io.Copy(io.Discard, mustOpen(t, r, newest.Objects[0].ObjectRef)); err != nil {
					t.Errorf("read the newest good snapshot's object: %v", err)
				}
				v, err := r.Verify(ctx, nil, true)
				if err != nil || v.Snapshots != 2 || v.Objects != 2 || len(v.Problems) != 1 || v.Problems[0].Object != name || !strings.Contains(v.Problems[0].Fix, "delete --damaged") {
					t.Errorf("verify --all --read-data: %+v, %v; want the 2 good snapshots checked and %s named with its fix", v, err, name)
				}
				// A backup (a new process) still finds earlier objects by fingerprint.
				if _, _, err := openRepo(t, h.b, Options{}).PutObject(ctx, "fp-new", strings.NewReader("partition")); err != nil {
					t.Errorf("backup with a damaged manifest in the repository: %v", err)
				}
				// Prune forgets by policy but deletes no object while a manifest is damaged.
				p, err := r.Prune(ctx, Retention{KeepLast: 1}, false, time.Second)
				if err != nil || len(p.Forgotten) != 1 || p.Forgotten[0] != h.good[0].ID || p.ObjectsRemoved != 0 || p.SweepSkipped == "" || len(p.Damaged) != 1 {
					t.Errorf("prune with a damaged manifest: %+v, %v", p, err)
				}
				h.checkSentinels(t)

				// Removing the damaged manifest by the name verify gave lets the sweep run.
				if err := r.DeleteDamaged(ctx, filepath.Base(name)); err != nil {
					t.Fatalf("delete --damaged: %v", err)
				}
				p, err = r.Prune(ctx, Retention{KeepLast: 1}, false, time.Second)
				if err != nil || p.ObjectsRemoved != 2 || p.ObjectsRemaining != 1 || p.SweepSkipped != "" {
					t.Errorf("prune after removing it: %+v, %v; want the forgotten snapshot's object and the unreferenced new one removed", p, err)
				}
				if v, err := r.Verify(ctx, nil, true); err != nil || v.Snapshots != 1 || len(v.Problems) != 0 {
					t.Errorf("verify after cleanup: %+v, %v", v, err)
				}
				h.checkSentinels(t)
			})
		}
	}
}

func putJSON(m *Manifest) func(*testing.T, *hostileRepo, string) {
	return func(t *testing.T, h *hostileRepo, name string) {
		t.Helper()
		if err := h.r.PutJSON(context.Background(), name, m); err != nil {
			t.Fatal(err)
		}
	}
}

func putRaw(b []byte) func(*testing.T, *hostileRepo, string) {
	return func(t *testing.T, h *hostileRepo, name string) {
		t.Helper()
		if _, err := h.b.Put(context.Background(), name, bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
	}
}

func mustOpen(t *testing.T, r *Repository, ref ObjectRef) io.Reader {
	t.Helper()
	rc, err := r.OpenObject(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rc.Close() })
	return rc
}

// TestCraftedIDsAreNeverActedOn calls the entry points that take ids directly.
func TestCraftedIDsAreNeverActedOn(t *testing.T) {
	ctx := context.Background()
	h := newHostileRepo(t, backendCases[0], Options{})
	for _, id := range []string{"", "a", "../victim/secret", "../../x", strings.Repeat("a", 31), strings.Repeat("A", 32), "data/../../x"} {
		if name := (ObjectRef{ID: id}).Name(); name != "" {
			t.Errorf("ObjectRef{%q}.Name() = %q; want \"\" for an id tracevault never writes", id, name)
		}
		if _, err := h.r.OpenObject(ctx, ObjectRef{ID: id}); !errors.Is(err, ErrInvalidID) {
			t.Errorf("OpenObject(%q): %v; want ErrInvalidID", id, err)
		}
		if err := h.r.DeleteSnapshot(ctx, id); !errors.Is(err, ErrInvalidID) {
			t.Errorf("DeleteSnapshot(%q): %v; want ErrInvalidID", id, err)
		}
		if err := h.r.DeleteDamaged(ctx, id); !errors.Is(err, ErrNotFound) {
			t.Errorf("DeleteDamaged(%q): %v; want ErrNotFound (nothing damaged has that name)", id, err)
		}
	}
	if _, err := h.r.Snapshot(ctx, ""); !errors.Is(err, ErrNotFound) {
		t.Errorf(`Snapshot(""): %v; an empty id must match nothing`, err)
	}
	// A readable snapshot is never removed as "damaged".
	if err := h.r.DeleteDamaged(ctx, h.good[0].ID+".json"); !errors.Is(err, ErrNotFound) {
		t.Errorf("DeleteDamaged of a good snapshot: %v", err)
	}
	if c, _ := h.r.Catalog(ctx); len(c.Snapshots) != 2 {
		t.Errorf("good snapshots lost: %d left", len(c.Snapshots))
	}
	h.checkSentinels(t)
}

func TestLatestWhenOnlyPartial(t *testing.T) {
	ctx := context.Background()
	b, _ := NewFS(t.TempDir())
	r := openRepo(t, b, Options{})
	m := NewManifest(nil)
	m.Status, m.Error = StatusPartial, "clickhouse: replica ch2 unreachable"
	if err := r.CommitManifest(ctx, m); err != nil {
		t.Fatal(err)
	}
	_, err := r.Snapshot(ctx, "latest")
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), m.ID) || !strings.Contains(err.Error(), "partial") || !strings.Contains(err.Error(), "by id") {
		t.Errorf("latest with only a partial snapshot: %v; want it named, with how to use it", err)
	}
}

func TestRetentionKeepingNothingIsRefused(t *testing.T) {
	ctx := context.Background()
	h := newHostileRepo(t, backendCases[0], Options{})
	for _, p := range []Retention{{}, {MinAge: time.Hour}} {
		if _, err := h.r.Prune(ctx, p, false, time.Second); err == nil || !strings.Contains(err.Error(), "every keep rule is 0") {
			t.Errorf("prune with %+v: %v; want refused", p, err)
		}
	}
	if c, _ := h.r.Catalog(ctx); len(c.Snapshots) != 2 {
		t.Errorf("a refused prune forgot snapshots: %d left", len(c.Snapshots))
	}
}

func TestOpenNeverCreates(t *testing.T) {
	ctx := context.Background()
	for _, bc := range backendCases {
		t.Run(bc.name, func(t *testing.T) {
			if bc.name == "azurite" {
				env := devstack.Require(t)
				typo := strings.ReplaceAll(strings.ToLower(devstack.ScratchName("typo")), "_", "-")
				_, err := Open(ctx, Options{URL: "azblob://" + typo + "/repo", ConnectionString: env.AzureConnectionString, MustExist: true})
				if !errors.Is(err, ErrNoRepository) {
					t.Errorf("open a mistyped container: %v; want ErrNoRepository", err)
				}
				c, err := container.NewClientFromConnectionString(env.AzureConnectionString, typo, nil)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := c.GetProperties(ctx, nil); !bloberror.HasCode(err, bloberror.ContainerNotFound) {
					t.Errorf("opening the mistyped container %s created it (%v)", typo, err)
					_, _ = c.Delete(ctx, nil)
				}
			}
			if bc.name == "fs" {
				dir := filepath.Join(t.TempDir(), "typo")
				_, err := Open(ctx, Options{URL: "file://" + dir, MustExist: true})
				if !errors.Is(err, ErrNoRepository) || !strings.Contains(err.Error(), "tracevault init") {
					t.Errorf("open a missing repository: %v; want ErrNoRepository naming init", err)
				}
				if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("opening created %s: %v", dir, err)
				}
			}
			b := bc.open(t, AzureOptions{BlockSize: 1 << 20})
			if _, err := OpenBackend(ctx, b, Options{MustExist: true}); !errors.Is(err, ErrNoRepository) {
				t.Errorf("open an empty location: %v; want ErrNoRepository", err)
			}
			if _, err := b.Stat(ctx, "config"); !errors.Is(err, ErrNotFound) {
				t.Errorf("opening without create wrote a config: %v", err)
			}
			openRepo(t, b, Options{}) // creates
			if _, err := OpenBackend(ctx, b, Options{MustExist: true}); err != nil {
				t.Errorf("open the created repository: %v", err)
			}
		})
	}
}

// keyFile writes a new age identity and returns its file and recipient.
func keyFile(t *testing.T) (string, string) {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "key.txt")
	if err := os.WriteFile(p, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p, id.Recipient().String()
}

func TestEncryptionRules(t *testing.T) {
	ctx := context.Background()
	keyA, recA := keyFile(t)
	keyB, recB := keyFile(t)
	b, _ := NewFS(t.TempDir())
	openRepo(t, b, Options{Recipients: []string{recA}, IdentityFile: keyA})
	plain, _ := NewFS(t.TempDir())
	openRepo(t, plain, Options{})
	tests := []struct {
		name string
		b    Backend
		opts Options
		want string
	}{
		{"recipients only (write-only)", b, Options{Recipients: []string{recA}}, "write-only set-ups are not supported"},
		{"identity only would write plaintext", b, Options{IdentityFile: keyA}, "unencrypted"},
		{"passphrase with recipients", b, Options{Recipients: []string{recA}, IdentityFile: keyA, Passphrase: "p"}, "goes alone"},
		{"identity not among recipients", b, Options{Recipients: []string{recA}, IdentityFile: keyB}, "none of its keys belongs"},
		{"other keys: mixing refused", b, Options{Recipients: []string{recB}, IdentityFile: keyB}, "never mixes keys"},
		{"an extra recipient: mixing refused", b, Options{Recipients: []string{recA, recB}, IdentityFile: keyA}, "never mixes keys"},
		{"no keys for an encrypted repository", b, Options{}, "it is encrypted"},
		{"a passphrase for an X25519 repository", b, Options{Passphrase: "p"}, "never mixes keys"},
		{"keys for a plaintext repository", plain, Options{Recipients: []string{recA}, IdentityFile: keyA}, "not encrypted"},
	}
	for _, tt := range tests {
		_, err := OpenBackend(ctx, tt.b, tt.opts)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v; want an error containing %q", tt.name, err, tt.want)
		}
	}
	pb, _ := NewFS(t.TempDir())
	openRepo(t, pb, Options{Passphrase: "right"})
	if _, err := OpenBackend(ctx, pb, Options{Passphrase: "wrong"}); err == nil || !strings.Contains(err.Error(), "does not unlock") {
		t.Errorf("wrong passphrase: %v", err)
	}
}

// TestForgedManifestsInAnEncryptedRepository: anyone who knows a recipient (a public key) can
// encrypt a manifest that decrypts; without a MAC under the repository's secret it is refused,
// as is an altered copy of a real one, while the real ones stay usable.
func TestForgedManifestsInAnEncryptedRepository(t *testing.T) {
	ctx := context.Background()
	key, rec := keyFile(t)
	encryptions := []struct {
		name string
		opts Options
	}{
		{"age-x25519", Options{Recipients: []string{rec}, IdentityFile: key}},
		{"age-passphrase", Options{Passphrase: "correct horse battery staple"}},
	}
	for _, bc := range backendCases {
		for _, enc := range encryptions {
			t.Run(bc.name+"/"+enc.name, func(t *testing.T) {
				h := newHostileRepo(t, bc, enc.opts)
				// The attacker's writer: the same public keys, no secret (what PutJSON does is
				// what anyone with a recipient can do).
				forged := craftedManifest("20261125T000000Z-f0f0f0", h.good[0].Objects[0].ObjectRef)
				putJSON(forged)(t, h, manifestName(forged.ID))
				altered := *h.good[1]
				altered.ID = "20261125T000000Z-a1a1a1"
				altered.Tags = []string{"altered"}
				putJSON(&altered)(t, h, manifestName(altered.ID))
				plainText := craftedManifest("20261125T000000Z-b2b2b2")
				if _, err := h.b.Put(ctx, manifestName(plainText.ID), strings.NewReader(`{"id":"20261125T000000Z-b2b2b2","status":"complete"}`)); err != nil {
					t.Fatal(err)
				}

				r := openRepo(t, h.b, enc.opts) // a new process
				cat, err := r.Catalog(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if len(cat.Snapshots) != 2 || len(cat.Damaged) != 3 {
					t.Fatalf("catalog: %d good, damaged %+v; want the 2 real snapshots and 3 refused", len(cat.Snapshots), cat.Damaged)
				}
				for _, d := range cat.Damaged {
					if d.Name == manifestName(plainText.ID) {
						continue // not even age: fails decryption
					}
					if !strings.Contains(d.Error, ErrUnauthenticated.Error()) {
						t.Errorf("%s: %s; want it refused as unauthenticated", d.Name, d.Error)
					}
				}
				if m, err := r.Snapshot(ctx, "latest"); err != nil || m.ID != h.good[1].ID {
					t.Errorf("latest: %v %v", m, err)
				}
			})
		}
	}
}

// TestAuthenticationSurvivesEncoding: what a writer signs, a reader verifies, whatever the
// manifest holds (invalid UTF-8 in an error, HTML characters, non-UTC times, raw sections).
func TestAuthenticationSurvivesEncoding(t *testing.T) {
	ctx := context.Background()
	key, rec := keyFile(t)
	opts := Options{Recipients: []string{rec}, IdentityFile: key}
	b, _ := NewFS(t.TempDir())
	r := openRepo(t, b, opts)
	paris := time.FixedZone("CET", 3600)
	m := NewManifest([]string{"<tag> & \"quoted\""})
	m.Status, m.Error = StatusPartial, "clickhouse: Code: 241. DB::Exception \xff\xfe binary tail \u2028"
	m.Components = []Component{{Source: "clickhouse", Start: time.Now().In(paris), End: time.Now().In(paris), Status: StatusPartial}}
	m.Sections["clickhouse"] = json.RawMessage(`{ "create": "CREATE TABLE a.b (x String DEFAULT '<\u00e9>')", "n": 1.50 }`)
	if err := r.CommitManifest(ctx, m); err != nil {
		t.Fatal(err)
	}
	got, err := openRepo(t, b, opts).Snapshot(ctx, m.ID)
	if err != nil {
		t.Fatalf("a manifest with tricky content does not authenticate: %v", err)
	}
	if len(got.Auth) != 1 || got.Auth[0].Key != rec {
		t.Errorf("auth %+v; want one MAC under %s", got.Auth, rec)
	}
}
