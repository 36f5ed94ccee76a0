package zookeeper

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/tracevault/tracevault/snapshot/store"
)

// TestRestoreRecordChecksEverythingFirst: a record object swapped for another valid object
// (with an extra, hostile node) or a record holding an invalid path restores nothing at all:
// the checksum is compared at the end of the object, so RestoreRecord reads all of it first.
func TestRestoreRecordChecksEverythingFirst(t *testing.T) {
	conn, _ := connectStack(t)
	ctx := context.Background()
	root := scratchRoot(t, conn)
	addTable(t, conn, root, "traces")
	var good bytes.Buffer
	if _, err := Record(ctx, conn, RecordOptions{Roots: []string{root}}, &good); err != nil {
		t.Fatal(err)
	}
	deleteTree(conn, root)

	dir := t.TempDir()
	repo, err := store.Open(ctx, store.Options{URL: "file://" + dir})
	if err != nil {
		t.Fatal(err)
	}
	put := func(b []byte) store.ObjectRef {
		ref, _, err := repo.PutObject(ctx, "", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		return ref
	}
	stored := put(good.Bytes())
	hostile := append(append([]byte(nil), good.Bytes()...), []byte(`{"path":"`+root+`/zzz-injected","data":"cHduZWQ="}`+"\n")...)
	swapped := put(hostile)
	body, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(swapped.Name())))
	if err != nil {
		t.Fatal(err)
	}
	// The manifest still records the good record's checksum; its file now holds the other.
	if err := os.WriteFile(filepath.Join(dir, filepath.FromSlash(stored.Name())), body, 0o644); err != nil {
		t.Fatal(err)
	}
	badPath := put([]byte(`{"path":"` + root + `"}` + "\n" + `{"path":"` + root + `/../escaped"}` + "\n"))

	for _, tc := range []struct {
		name string
		ref  store.ObjectRef
		want error
	}{
		{"swapped object", stored, store.ErrCorrupt},
		{"invalid path", badPath, ErrBadRecord},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc, err := repo.OpenObject(ctx, tc.ref)
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			rep, err := RestoreRecord(ctx, conn, rc, RestoreOptions{Root: root})
			if !errors.Is(err, tc.want) {
				t.Fatalf("restore: %v, want %v", err, tc.want)
			}
			if ok, _, err := conn.Exists(root); err != nil || ok || rep.Created != 0 {
				t.Errorf("nodes were created before the record was checked: %s exists=%v (%v), report %+v", root, ok, err, rep)
			}
		})
	}

	// The intact record restores.
	clean := put(good.Bytes())
	rc, err := repo.OpenObject(ctx, clean)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	rep, err := RestoreRecord(ctx, conn, rc, RestoreOptions{Root: root})
	if err != nil || rep.Created == 0 {
		t.Fatalf("restore of the intact record: %+v, %v", rep, err)
	}
}

// TestRestoreRecordRefusesBeforeReading: on a root that has children a restore without
// --replace is refused before its record is read, so the run's summary counts no download for
// a restore that never writes; a dry run reads it, to show the plan beside the refusal.
func TestRestoreRecordRefusesBeforeReading(t *testing.T) {
	conn, _ := connectStack(t)
	ctx := context.Background()
	root := scratchRoot(t, conn)
	addTable(t, conn, root, "traces")
	var record bytes.Buffer
	if _, err := Record(ctx, conn, RecordOptions{Roots: []string{root}}, &record); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		opts     RestoreOptions
		wantRead bool
	}{
		{"refused", RestoreOptions{Root: root}, false},
		{"dry run", RestoreOptions{Root: root, DryRun: true}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := &countingReader{r: bytes.NewReader(record.Bytes())}
			rep, err := RestoreRecord(ctx, conn, src, tc.opts)
			if tc.wantRead != (src.n > 0) {
				t.Errorf("read %d bytes of the record, want read %v", src.n, tc.wantRead)
			}
			refused := errors.Is(err, ErrNodesExist) || rep.WouldRefuse != ""
			if !refused {
				t.Errorf("not refused: %v, %+v", err, rep)
			}
		})
	}
}

type countingReader struct {
	r interface{ Read([]byte) (int, error) }
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}
