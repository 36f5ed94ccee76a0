package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
)

func TestRepositoryRoundTrip(t *testing.T) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	idFile := filepath.Join(t.TempDir(), "key.txt")
	_ = os.WriteFile(idFile, []byte(id.String()+"\n"), 0o600)
	encryptions := []struct {
		name string
		opts Options
	}{
		{"plain", Options{}},
		{"age-x25519", Options{Recipients: []string{id.Recipient().String()}, IdentityFile: idFile}},
		{"age-passphrase", Options{Passphrase: "correct horse battery staple"}},
	}
	for _, bc := range backendCases {
		for _, enc := range encryptions {
			t.Run(bc.name+"/"+enc.name, func(t *testing.T) {
				ctx := context.Background()
				b := bc.open(t, AzureOptions{BlockSize: 1 << 20})
				r := openRepo(t, b, enc.opts)
				data := testData(5<<20, 2)
				ref, reused, err := r.PutObject(ctx, "fp-1", bytes.NewReader(data))
				if err != nil || reused {
					t.Fatalf("put: %v, reused %v", err, reused)
				}
				if ref.RawSize != int64(len(data)) || ref.Size >= ref.RawSize {
					t.Errorf("ref %+v: raw size should be %d and stored size smaller (compressed)", ref, len(data))
				}
				if got := reader(t)(r.OpenObject(ctx, ref)); !bytes.Equal(got, data) {
					t.Fatal("object read back differs")
				}
				m := NewManifest([]string{"test"})
				m.Objects = append(m.Objects, ManifestObject{ObjectRef: ref, Source: "clickhouse", Database: "default", Table: "traces", Partition: "202605"})
				m.Status = StatusComplete
				if err := r.CommitManifest(ctx, m); err != nil {
					t.Fatal(err)
				}

				// A new process (a new Repository) finds the object by fingerprint and reuses it.
				r2 := openRepo(t, b, enc.opts)
				ref2, reused, err := r2.PutObject(ctx, "fp-1", strings.NewReader("never read"))
				if err != nil || !reused || ref2 != ref {
					t.Fatalf("second put with the same fingerprint: %+v reused=%v err=%v; want the first object", ref2, reused, err)
				}
				if got, err := r2.Snapshot(ctx, m.ID[:12]); err != nil || got.ID != m.ID {
					t.Fatalf("find by prefix: %v, %v", got, err)
				}
				if got, err := r2.Snapshot(ctx, "latest"); err != nil || got.ID != m.ID {
					t.Fatalf("latest: %v, %v", got, err)
				}
				if _, err := OpenBackend(ctx, b, Options{}); enc.name != "plain" && err == nil {
					t.Error("an encrypted repository opened without keys")
				}
			})
		}
	}
}

func TestCorruptObjectIsNamed(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b, _ := NewFS(dir)
	r := openRepo(t, b, Options{})
	ref, _, err := r.PutObject(ctx, "", bytes.NewReader(testData(1<<20, 3)))
	if err != nil {
		t.Fatal(err)
	}
	m := NewManifest(nil)
	m.Status, m.Objects = StatusComplete, []ManifestObject{{ObjectRef: ref, Source: "postgres", Table: "users"}}
	if err := r.CommitManifest(ctx, m); err != nil {
		t.Fatal(err)
	}
	if rep, err := r.Verify(ctx, nil, true); err != nil || len(rep.Problems) != 0 {
		t.Fatalf("verify before damage: %+v %v", rep, err)
	}
	// Flip one byte in the middle of the stored object.
	p := filepath.Join(dir, filepath.FromSlash(ref.Name()))
	raw, _ := os.ReadFile(p)
	raw[len(raw)/2] ^= 0x01
	_ = os.WriteFile(p, raw, 0o640)

	rc, err := r.OpenObject(ctx, ref)
	if err == nil {
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
	}
	if err == nil || !strings.Contains(err.Error(), ref.Name()) {
		t.Errorf("reading the damaged object: %v; want an error naming %s", err, ref.Name())
	}
	rep, err := r.Verify(ctx, nil, true)
	if err != nil || len(rep.Problems) != 1 || rep.Problems[0].Object != ref.Name() || rep.Problems[0].What != "postgres users" {
		t.Errorf("verify --read-data after damage: %+v %v", rep, err)
	}
	if rep, _ := r.Verify(ctx, nil, false); len(rep.Problems) != 0 {
		t.Errorf("a flipped byte keeps the size: verify without read-data should pass, got %+v", rep.Problems)
	}
}

func TestRetentionKeep(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	at := func(id string, ago time.Duration, status string) Manifest {
		return Manifest{ID: id, Start: now.Add(-ago), Status: status}
	}
	snaps := []Manifest{
		at("a", 1*time.Hour, StatusComplete),
		at("b", 2*time.Hour, StatusComplete),
		at("c", 26*time.Hour, StatusComplete),
		at("d", 50*time.Hour, StatusComplete),
		at("e", 40*24*time.Hour, StatusComplete),
		at("p-new", 30*time.Minute, StatusPartial),
		at("p-old", 30*time.Hour, StatusPartial),
	}
	tests := []struct {
		name   string
		policy Retention
		want   string
	}{
		{"keep last 2", Retention{KeepLast: 2}, "a b p-new"},
		{"daily 3", Retention{KeepDaily: 3}, "a c d p-new"},
		{"monthly 2", Retention{KeepMonthly: 2}, "a e p-new"},
		{"min age keeps everything young", Retention{MinAge: 3 * time.Hour}, "a b p-new"},
		{"nothing", Retention{}, "p-new"},
		{"pinned outside the rules", Retention{KeepLast: 1, Pin: map[string]string{"d": "base of a chain"}}, "a d p-new"},
	}
	for _, tt := range tests {
		keep := tt.policy.Keep(snaps, now)
		var got []string
		for _, s := range snaps {
			if _, ok := keep[s.ID]; ok {
				got = append(got, s.ID)
			}
		}
		if strings.Join(got, " ") != tt.want {
			t.Errorf("%s: kept %v, want %s", tt.name, got, tt.want)
		}
	}
}

const crashChildEnv = "TRACEVAULT_TEST_CRASH_REPO"

// crashChild is a backup that is killed mid-upload: it commits one snapshot, then streams a
// second object slowly until the parent kills it with SIGKILL.
func crashChild() {
	ctx := context.Background()
	dir := os.Getenv(crashChildEnv)
	b, _ := NewFS(dir)
	r, err := OpenBackend(ctx, b, Options{})
	if err != nil {
		panic(err)
	}
	ref, _, err := r.PutObject(ctx, "", bytes.NewReader(testData(1<<20, 4)))
	if err != nil {
		panic(err)
	}
	m := NewManifest(nil)
	m.Status, m.Objects = StatusComplete, []ManifestObject{{ObjectRef: ref, Source: "test"}}
	if err := r.CommitManifest(ctx, m); err != nil {
		panic(err)
	}
	// An object uploaded completely but never referenced: what a crash between objects leaves.
	if _, _, err := r.PutObject(ctx, "", bytes.NewReader(testData(1<<20, 5))); err != nil {
		panic(err)
	}
	_ = os.WriteFile(filepath.Join(dir, "child-ready"), nil, 0o640)
	_, _, _ = r.PutObject(ctx, "", &slowReader{})
}

type slowReader struct{}

func (slowReader) Read(p []byte) (int, error) {
	time.Sleep(10 * time.Millisecond)
	return copy(p, bytes.Repeat([]byte("x"), min(len(p), 4096))), nil
}

func TestKillDuringBackupLeavesRepositoryConsistent(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(dir, "child-ready")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatal("child never got to its upload")
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // let the slow upload get going
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	_ = os.Remove(filepath.Join(dir, "child-ready"))

	ctx := context.Background()
	b, _ := NewFS(dir)
	r := openRepo(t, b, Options{})
	rep, err := r.Verify(ctx, nil, true)
	if err != nil || rep.Snapshots != 1 || len(rep.Problems) != 0 {
		t.Fatalf("verify --all after kill -9: %+v %v", rep, err)
	}
	pr, err := r.Prune(ctx, Retention{KeepLast: 10}, false, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if pr.ObjectsRemoved != 1 || pr.ObjectsRemaining != 1 {
		t.Errorf("prune after the crash: %+v; want the 1 orphan removed and 1 object kept", pr)
	}
	if rep, _ := r.Verify(ctx, nil, true); len(rep.Problems) != 0 {
		t.Errorf("verify after prune: %+v", rep.Problems)
	}
}

func TestPruneForgetsAndSweeps(t *testing.T) {
	ctx := context.Background()
	b, _ := NewFS(t.TempDir())
	r := openRepo(t, b, Options{})
	var ids []string
	for i := 0; i < 3; i++ {
		shared, _, _ := r.PutObject(ctx, "shared", strings.NewReader("same partition"))
		own, _, _ := r.PutObject(ctx, "", strings.NewReader(fmt.Sprint("snapshot ", i)))
		m := NewManifest(nil)
		m.Start = m.Start.Add(time.Duration(i) * time.Second)
		m.ID = fmt.Sprintf("2026112%dT000000Z-00000%d", i, i)
		m.Status, m.Objects = StatusComplete, []ManifestObject{{ObjectRef: shared}, {ObjectRef: own}}
		if err := r.CommitManifest(ctx, m); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.ID)
	}
	dry, err := r.Prune(ctx, Retention{KeepLast: 1}, true, time.Second)
	if err != nil || len(dry.Forgotten) != 2 || dry.ObjectsRemoved != 2 {
		t.Fatalf("dry run: %+v %v", dry, err)
	}
	if snaps, _ := r.Snapshots(ctx); len(snaps) != 3 {
		t.Fatal("dry run removed snapshots")
	}
	rep, err := r.Prune(ctx, Retention{KeepLast: 1}, false, time.Second)
	if err != nil || rep.ObjectsRemoved != 2 || rep.ObjectsRemaining != 2 {
		t.Fatalf("prune: %+v %v", rep, err)
	}
	if _, err := r.Snapshot(ctx, ids[0]); !errors.Is(err, ErrNotFound) {
		t.Errorf("forgotten snapshot still found: %v", err)
	}
	if v, _ := r.Verify(ctx, nil, true); len(v.Problems) != 0 {
		t.Errorf("the kept snapshot lost an object: %+v", v.Problems)
	}
}
