package chaos

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/tracevault/tracevault/jobs"
	"github.com/tracevault/tracevault/snapshot/blobs"
	"github.com/tracevault/tracevault/snapshot/store"
)

// ingest is Langfuse's blob ingestion beside `demo load`: event files written into a container
// of their own on Azurite (Langfuse's storage account, reached directly: the suite's storage
// faults are the repository's), each followed by its blob_storage_file_log row, in batches, as
// Langfuse writes a file before its row. It remembers when each file's write was acknowledged.
type ingest struct {
	container blobs.Container
	url       string
	cred      blobs.Credentials

	mu      sync.Mutex
	written map[string]ingested
	rows    int64 // file log rows acknowledged
	stop    context.CancelFunc
	done    chan struct{}
}

type ingested struct {
	md5 [16]byte
	at  time.Time
}

// startIngest makes the container, writes a file for every row the seed put into the file log
// (the seed writes rows only), and starts writing new files and rows.
func (s *suite) startIngest() {
	t := s.t
	ctx := context.Background()
	name := "events-" + strings.ReplaceAll(filepath.Base(s.db), "_", "-") // Azure: lowercase, digits, hyphens
	in := &ingest{url: "azblob://" + name, cred: blobs.Credentials{ConnectionString: s.env.AzureConnectionString}, written: map[string]ingested{}}
	c, err := blobs.OpenContainer(ctx, in.url, in.cred, true)
	if err != nil {
		t.Fatal(err)
	}
	in.container = c
	t.Cleanup(func() {
		if az, err := store.NewAzure(ctx, store.AzureOptions{ConnectionString: s.env.AzureConnectionString, Container: name, NoCreate: true}); err == nil {
			_, _ = az.Container().Delete(ctx, nil)
		}
	})
	conn := s.clickhouse(t)
	rows, err := conn.Query(ctx, fmt.Sprintf("SELECT DISTINCT bucket_path FROM %s.blob_storage_file_log", s.db))
	if err != nil {
		t.Fatal(err)
	}
	var seeded []string
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			t.Fatal(err)
		}
		seeded = append(seeded, p)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(s.seed, 20))
	for _, p := range seeded {
		if err := in.put(ctx, p, r); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("chaos: blob container %s holds a file for each of the %d file log rows the seed wrote", in.url, len(seeded))

	every, perTick := 500*time.Millisecond, 4
	if s.full {
		perTick = 10
	}
	runCtx, cancel := context.WithCancel(ctx)
	in.stop, in.done = cancel, make(chan struct{})
	go func() {
		defer close(in.done)
		defer conn.Close()
		for n := 0; runCtx.Err() == nil; n++ {
			sleep(runCtx, every)
			if err := in.tick(runCtx, conn, s.db, n, perTick, r); err != nil && runCtx.Err() == nil {
				// A fault on ClickHouse: the files stay, unreferenced, as Langfuse's would.
				sleep(runCtx, time.Second)
			}
		}
	}()
	s.blobs = in
}

func (in *ingest) put(ctx context.Context, name string, r *rand.Rand) error {
	body, _ := json.Marshal(map[string]any{"name": name, "payload": fmt.Sprintf("%x", r.Uint64()), "pad": bytes.Repeat([]byte("x"), r.IntN(4000))})
	sum := md5.Sum(body)
	if err := in.container.Put(ctx, name, int64(len(body)), sum[:], bytes.NewReader(body)); err != nil {
		return err
	}
	in.mu.Lock()
	in.written[name] = ingested{md5: sum, at: time.Now()}
	in.mu.Unlock()
	return nil
}

// tick writes n files, then their rows in one insert.
func (in *ingest) tick(ctx context.Context, conn clickhouse.Conn, db string, tick, n int, r *rand.Rand) error {
	batch, err := conn.PrepareBatch(ctx, fmt.Sprintf("INSERT INTO %s.blob_storage_file_log (id, project_id, entity_type, entity_id, event_id, bucket_name, bucket_path, created_at, updated_at, event_ts, is_deleted)", db))
	if err != nil {
		return err
	}
	now := time.Now().UTC().Truncate(time.Second)
	for i := range n {
		project := fmt.Sprintf("p%d", r.IntN(5))
		event := fmt.Sprintf("ev-%d-%d", tick, i)
		name := fmt.Sprintf("%s/events/%s.json", project, event)
		if err := in.put(ctx, name, r); err != nil {
			_ = batch.Abort()
			return err
		}
		if err := batch.Append("bl-"+event, project, "trace", event, event, "chaos-events", name, now, now, now, uint8(0)); err != nil {
			_ = batch.Abort()
			return err
		}
	}
	if err := batch.Send(); err != nil {
		return err
	}
	in.mu.Lock()
	in.rows += int64(n)
	in.mu.Unlock()
	return nil
}

func (s *suite) stopIngest() {
	if s.blobs != nil && s.blobs.stop != nil {
		s.blobs.stop()
		<-s.blobs.done
		s.blobs.stop = nil
	}
}

// blobsConfig is the daemon's [blobs] section: the container through the proxy, like the
// repository, so the storage faults reach both.
func (s *suite) blobsConfig(proxied string) string {
	return fmt.Sprintf("[blobs]\nurl = %q\nconnection_string = %q\n", s.blobs.url, proxied)
}

// checkBlobs restores snapshot m's blobs and checks them against what the ingestion wrote:
// every file acknowledged before the listing began is restored with its MD5; the check the
// backup recorded finds no file log row without its file (each row follows its file); and every
// file log row the drill restored from the snapshot's ClickHouse has its file among the blobs.
func (s *suite) checkBlobs(ctx context.Context, m *store.Manifest) {
	t := s.t
	raw, ok := m.Sections[blobs.Name]
	var sec blobs.Section
	if !ok || json.Unmarshal(raw, &sec) != nil {
		t.Errorf("complete snapshot %s has no blob section", m.ID)
		return
	}
	dir := filepath.Join(s.dir, "blobs-restored")
	_ = os.RemoveAll(dir)
	defer os.RemoveAll(dir)
	rep, err := blobs.Restore(ctx, s.repo, m, blobs.RestoreOptions{URL: "file://" + dir, Log: quietLog()})
	if err != nil {
		t.Errorf("restore the blobs of snapshot %s: %v", m.ID, err)
		return
	}
	restored := map[string][16]byte{}
	d, err := blobs.OpenContainer(ctx, "file://"+dir, blobs.Credentials{}, false)
	if err == nil {
		err = d.List(ctx, func(e blobs.Entry) error {
			rc, _, err := d.Open(ctx, e.Name)
			if err != nil {
				return err
			}
			defer rc.Close()
			h := md5.New()
			if _, err := io.Copy(h, rc); err != nil {
				return err
			}
			restored[e.Name] = [16]byte(h.Sum(nil))
			return nil
		})
	}
	if err != nil {
		t.Errorf("read the restored blobs of snapshot %s: %v", m.ID, err)
		return
	}

	s.blobs.mu.Lock()
	var lost []string
	due := 0
	for name, w := range s.blobs.written {
		if !w.at.Before(sec.Cut.Time) {
			continue
		}
		due++
		if got, ok := restored[name]; !ok || got != w.md5 {
			lost = append(lost, name)
		}
	}
	s.blobs.mu.Unlock()
	s.blobsKept += int64(due - len(lost))
	s.blobsLost += int64(len(lost))
	if len(lost) > 0 {
		t.Errorf("snapshot %s: %d of the %d files written before its listing began (%s) are not restored as written, e.g. %v",
			m.ID, len(lost), due, sec.Cut.Time.Format(time.RFC3339Nano), lost[:min(5, len(lost))])
	}
	switch c := sec.Check; {
	case c == nil:
		t.Errorf("snapshot %s: no file log check recorded", m.ID)
	case c.Error != "":
		t.Logf("chaos: snapshot %s: the file log could not be read for the check (a fault): %s", m.ID, c.Error)
	case c.Missing > 0:
		t.Errorf("snapshot %s: the check reports %d file log rows without their file (e.g. %v), but every row was written after its file",
			m.ID, c.Missing, c.MissingExamples)
	}

	// The snapshot's own file log, as the drill restored it.
	conn := s.clickhouse(t)
	defer conn.Close()
	copyDB := s.db + jobs.DrillSuffix
	if err := conn.Exec(ctx, fmt.Sprintf("SYSTEM SYNC REPLICA %s.blob_storage_file_log", copyDB)); err != nil {
		t.Errorf("sync the restored %s.blob_storage_file_log: %v", copyDB, err)
		return
	}
	rows, err := conn.Query(ctx, fmt.Sprintf("SELECT DISTINCT bucket_path FROM %s.blob_storage_file_log FINAL WHERE is_deleted = 0", copyDB))
	if err != nil {
		t.Errorf("read the restored file log: %v", err)
		return
	}
	defer rows.Close()
	var orphans []string
	n := 0
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			t.Errorf("read the restored file log: %v", err)
			return
		}
		n++
		if _, ok := restored[p]; !ok {
			orphans = append(orphans, p)
		}
	}
	if len(orphans) > 0 {
		t.Errorf("snapshot %s: %d of the %d file log rows it restores have no file among its %d blobs, e.g. %v",
			m.ID, len(orphans), n, rep.Blobs, orphans[:min(5, len(orphans))])
	}
	t.Logf("chaos: snapshot %s: %d blobs restored, %d written before its listing all there; %d file log rows, each with its file",
		m.ID, rep.Blobs, due, n)
}

func (s *suite) clickhouse(t interface{ Fatal(...any) }) clickhouse.Conn {
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: s.env.CHNative, Auth: clickhouse.Auth{Username: "default"}})
	if err != nil {
		t.Fatal(err)
	}
	return conn
}
