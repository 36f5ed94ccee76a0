package jobs

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/json"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/tracevault/tracevault/config"
	"github.com/tracevault/tracevault/snapshot/blobs"
	"github.com/tracevault/tracevault/snapshot/clickhouse"
	"github.com/tracevault/tracevault/snapshot/store"
	"github.com/tracevault/tracevault/snapshot/zookeeper"
)

// TestFullSetWithBlobs backs up all four sources into one snapshot set, then restores each into
// a scratch target: ClickHouse and PostgreSQL through the drill (scratch databases, compared),
// the ZooKeeper subtree deleted after the backup, and the blob container into a new container.
// The blob section records the cut and the check against ClickHouse's blob_storage_file_log.
func TestFullSetWithBlobs(t *testing.T) {
	f := newDrillFixture(t) // seeds the scratch databases; its own backup is not used here
	env, ctx := f.env, context.Background()
	cred := blobs.Credentials{ConnectionString: env.AzureConnectionString}
	suffix := time.Now().UnixNano() % 1e12
	srcURL, dstURL := fmt.Sprintf("azblob://it-events-%d", suffix), fmt.Sprintf("azblob://it-restored-%d", suffix)
	src, err := blobs.OpenContainer(ctx, srcURL, cred, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteContainers(env.AzureConnectionString, srcURL, dstURL) })

	// Every file the seeded file log names but one, and one file no row names.
	paths := fileLogPaths(t, f)
	want := map[string][16]byte{}
	for i, p := range paths[1:] {
		data := []byte(fmt.Sprintf(`{"event": %d, "path": %q}`, i, p))
		want[p] = md5.Sum(data)
		putBlob(t, src, p, data)
	}
	extra := bytes.Repeat([]byte("png"), 1000)
	want["media/extra.png"] = md5.Sum(extra)
	putBlob(t, src, "media/extra.png", extra)

	// A ZooKeeper subtree of the set, removed after the backup and restored from it.
	zkRoot := fmt.Sprintf("/it_blobs_%d", suffix)
	conn, err := zookeeper.Connect(ctx, []string{env.ZK}, 10*time.Second, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, p := range []string{zkRoot, zkRoot + "/a", zkRoot + "/a/b"} {
		if _, err := conn.Create(p, []byte("data of "+p), 0, zk.WorldACL(zk.PermAll)); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { _ = deleteZK(conn, zkRoot) })

	cfg := f.cfg
	cfg.ZooKeeper.Servers, cfg.ZooKeeper.Roots, cfg.ZooKeeper.Exclude = []string{env.ZK}, []string{zkRoot}, nil
	cfg.Blobs = config.Blobs{URL: srcURL, AzureCredentials: config.AzureCredentials{ConnectionString: config.Secret(env.AzureConnectionString)}, Workers: 2, PackSize: 1 << 20}
	m, err := Backup(ctx, cfg, f.repo, BackupRequest{}, quiet)
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	if got := fmt.Sprint(m.Sources()); got != "[postgres clickhouse zookeeper blobs]" {
		t.Fatalf("sources %s", got)
	}
	var sec blobs.Section
	if err := json.Unmarshal(m.Sections["blobs"], &sec); err != nil {
		t.Fatal(err)
	}
	if sec.Cut.Time.IsZero() || sec.Cut.Newest == "" || sec.Cut.Time.Before(m.Start) {
		t.Fatalf("cut not recorded: %+v", sec.Cut)
	}
	c := sec.Check
	if c == nil || c.Table == "" || c.Files != int64(len(paths)) || c.Missing != 1 || c.MissingExamples[0] != paths[0] ||
		c.Unreferenced != 1 || c.UnreferencedExamples[0] != "media/extra.png" {
		t.Fatalf("check %+v; want %d files, %s missing, media/extra.png unreferenced", c, len(paths), paths[0])
	}

	// ClickHouse and PostgreSQL into scratch databases, compared with the manifest; every blob
	// read back and checked.
	res, err := Drill(ctx, cfg, f.repo, DrillRequest{Snapshot: m.ID}, quiet)
	if err != nil || len(res.Sources) != 3 || res.Sources[2].Source != "blobs" || res.Sources[2].Rows != uint64(len(want)) {
		t.Fatalf("drill: %+v, %v; want clickhouse, postgres and the %d blobs", res, err, len(want))
	}
	// ZooKeeper: the subtree, gone since, comes back.
	if err := deleteZK(conn, zkRoot); err != nil {
		t.Fatal(err)
	}
	rec, err := zkRecord(ctx, f.repo, m)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := zookeeper.RestoreRecord(ctx, conn, bytes.NewReader(rec), zookeeper.RestoreOptions{Root: zkRoot})
	if err != nil || zr.Created != 3 {
		t.Fatalf("zookeeper restore: %+v, %v", zr, err)
	}
	if data, _, err := conn.Get(zkRoot + "/a/b"); err != nil || string(data) != "data of "+zkRoot+"/a/b" {
		t.Fatalf("restored node: %q, %v", data, err)
	}
	// Blobs into a new container.
	rep, err := blobs.Restore(ctx, f.repo, m, blobs.RestoreOptions{URL: dstURL, Credentials: cred, Log: quiet})
	if err != nil || rep.Written != int64(len(want)) {
		t.Fatalf("blob restore: %+v, %v", rep, err)
	}
	dst, err := blobs.OpenContainer(ctx, dstURL, cred, false)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	if err := dst.List(ctx, func(e blobs.Entry) error {
		n++
		if [16]byte(e.MD5) != want[e.Name] {
			return fmt.Errorf("restored %s: md5 %x, want %x", e.Name, e.MD5, want[e.Name])
		}
		return nil
	}); err != nil || n != len(want) {
		t.Fatalf("restored container: %d blobs, want %d: %v", n, len(want), err)
	}
}

func fileLogPaths(t *testing.T, f *drillFixture) []string {
	t.Helper()
	srv, err := clickhouse.Dial(context.Background(), f.env.CHNative[0], clickhouse.ConnOptions{User: "default"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	rows, err := srv.Conn.Query(context.Background(), fmt.Sprintf("SELECT DISTINCT bucket_path FROM %s.blob_storage_file_log FINAL WHERE is_deleted = 0 ORDER BY bucket_path", f.chDB))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	if len(out) < 2 {
		t.Fatalf("the seeded file log names %d files", len(out))
	}
	return out
}

func putBlob(t *testing.T, c blobs.Container, name string, data []byte) {
	t.Helper()
	sum := md5.Sum(data)
	if err := c.Put(context.Background(), name, int64(len(data)), sum[:], bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
}

func deleteContainers(conn string, urls ...string) {
	for _, u := range urls {
		a, err := store.NewAzure(context.Background(), store.AzureOptions{Container: u[len("azblob://"):], ConnectionString: conn, NoCreate: true})
		if err == nil {
			_, _ = a.Container().Delete(context.Background(), nil)
		}
	}
}

func deleteZK(conn *zk.Conn, p string) error {
	children, _, err := conn.Children(p)
	if err == zk.ErrNoNode {
		return nil
	}
	if err != nil {
		return err
	}
	for _, c := range children {
		if err := deleteZK(conn, p+"/"+c); err != nil {
			return err
		}
	}
	return conn.Delete(p, -1)
}

// zkRecord reads the snapshot's ZooKeeper record.
func zkRecord(ctx context.Context, repo *store.Repository, m *store.Manifest) ([]byte, error) {
	for _, o := range m.Objects {
		if o.Source == config.SourceZooKeeper {
			rc, err := repo.OpenObject(ctx, o.ObjectRef)
			if err != nil {
				return nil, err
			}
			defer rc.Close()
			return io.ReadAll(rc)
		}
	}
	return nil, fmt.Errorf("snapshot %s has no zookeeper record", m.ID)
}
