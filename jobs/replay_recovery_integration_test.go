package jobs

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tracevault/tracevault/config"
	"github.com/tracevault/tracevault/internal/devstack"
	"github.com/tracevault/tracevault/jobs/replay"
	"github.com/tracevault/tracevault/snapshot/blobs"
	"github.com/tracevault/tracevault/snapshot/clickhouse"
)

// traceEvent is the raw event the test's ingestion writes before its row, as Langfuse does.
type traceEvent struct {
	ID        string `json:"id"`
	ProjectID string `json:"project_id"`
	Name      string `json:"name"`
	Timestamp int64  `json:"timestamp"`
}

// TestReplayRecoversLostTracesWithFakeLangfuseWorker plays the disaster on the stack: events are
// ingested Langfuse's way (the raw event to the container on Azurite, then the row to
// ClickHouse), a snapshot is taken, ingestion goes on, the table is lost, the snapshot is
// restored, and replay-events sends the events written since the cut to a fake of Langfuse's
// replay route whose worker turns each event back into its row (idempotently: the table is a
// ReplacingMergeTree, as Langfuse's are). Every row acknowledged before the loss is back.
func TestReplayRecoversLostTracesWithFakeLangfuseWorker(t *testing.T) {
	env := devstack.Require(t)
	ctx := context.Background()
	db := env.CHDatabase(t, "it_replay")
	ch, err := clickhouse.Dial(ctx, env.CHNative[0], clickhouse.ConnOptions{User: "default"})
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	// Writes go over HTTP, as the stack's other fixtures write (the 18.16 replicas take an
	// INSERT ... VALUES there).
	exec := func(q string) {
		t.Helper()
		if err := env.CHExec(0, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec(fmt.Sprintf(`CREATE TABLE %s.traces ON CLUSTER %s (id String, project_id String, name String,
		timestamp DateTime, event_ts DateTime) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/%s/traces', '{replica}', event_ts)
		PARTITION BY toYYYYMM(timestamp) ORDER BY (project_id, id)`, db, env.CHCluster, db))

	containerURL := fmt.Sprintf("azblob://it-replay-%d", time.Now().UnixNano()%1e12)
	cred := blobs.Credentials{ConnectionString: env.AzureConnectionString}
	events, err := blobs.OpenContainer(ctx, containerURL+"/events", cred, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteContainers(env.AzureConnectionString, containerURL) })

	// insert writes an event's row; the worker calls it too, off the test's goroutine.
	insert := func(e traceEvent) error {
		return env.CHExec(0, fmt.Sprintf("INSERT INTO %s.traces VALUES ('%s', '%s', '%s', %d, now())", db, e.ID, e.ProjectID, e.Name, e.Timestamp))
	}
	var ledger []string // traces whose ingestion was acknowledged
	ingest := func(n int) {
		t.Helper()
		for range n {
			i := len(ledger)
			e := traceEvent{ID: fmt.Sprintf("trace-%03d", i), ProjectID: []string{"p1", "p2"}[i%2], Name: "demo", Timestamp: time.Now().Unix()}
			body, _ := json.Marshal(e)
			sum := md5.Sum(body)
			key := fmt.Sprintf("%s/trace/%s/event-%03d.json", e.ProjectID, e.ID, i)
			if err := events.Put(ctx, key, int64(len(body)), sum[:], bytes.NewReader(body)); err != nil {
				t.Fatal(err)
			}
			if err := insert(e); err != nil {
				t.Fatal(err)
			}
			ledger = append(ledger, e.ID)
		}
	}
	rows := func() []string {
		t.Helper()
		r, err := ch.Conn.Query(ctx, fmt.Sprintf("SELECT id FROM %s.traces FINAL ORDER BY id", db))
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		var ids []string
		for r.Next() {
			var id string
			if err := r.Scan(&id); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
		}
		return ids
	}

	// The fake route's worker: each key's event read from the container and written as its row.
	const adminKey = "sk-admin-it-replay"
	var replayed atomic.Int64 // the worker's count, written off the test's goroutine
	langfuse := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.Header.Get("Authorization") != "Bearer "+adminKey {
			http.Error(w, `{"error":"Unauthorized: Invalid token"}`, http.StatusUnauthorized)
			return
		}
		var req struct{ Keys []string }
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || len(req.Keys) < 1 || len(req.Keys) > replay.MaxBatch {
			http.Error(w, `{"error":"bad body"}`, http.StatusBadRequest)
			return
		}
		for _, k := range req.Keys {
			rc, _, err := events.Open(r.Context(), k)
			if err != nil {
				http.Error(w, fmt.Sprintf(`{"error":%q}`, err.Error()), http.StatusInternalServerError)
				return
			}
			var e traceEvent
			err = json.NewDecoder(rc).Decode(&e)
			rc.Close()
			if err != nil {
				http.Error(w, fmt.Sprintf(`{"error":%q}`, err.Error()), http.StatusInternalServerError)
				return
			}
			if err := insert(e); err != nil {
				http.Error(w, fmt.Sprintf(`{"error":%q}`, err.Error()), http.StatusInternalServerError)
				return
			}
			replayed.Add(1)
		}
		fmt.Fprintf(w, `{"queued":%d,"skipped":0,"errors":[]}`, len(req.Keys))
	}))
	defer langfuse.Close()

	cfg := daemonConfig(t, env, t.TempDir())
	cfg.ZooKeeper.Servers = nil
	cfg.ClickHouse.Addresses, cfg.ClickHouse.HTTPAddresses, cfg.ClickHouse.Cluster = env.CHNative, env.CHHTTP, env.CHCluster
	cfg.ClickHouse.Databases = []string{db}
	cfg.Blobs.URL = containerURL
	cfg.Blobs.ConnectionString = config.Secret(env.AzureConnectionString)
	cfg.Langfuse = config.Langfuse{URL: langfuse.URL, AdminAPIKey: adminKey, EventsPrefix: "events/", ReplayMargin: config.Duration(time.Second),
		ReplayBatch: 7, ReplayRetries: 2, ReplayState: filepath.Join(t.TempDir(), "replay.json")}
	repo, err := CreateRepository(ctx, cfg.Storage, quiet)
	if err != nil {
		t.Fatal(err)
	}

	ingest(20)
	m, err := Backup(ctx, cfg, repo, BackupRequest{Only: []string{config.SourceClickHouse}}, quiet)
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	// Azure's Last-Modified has whole seconds: the events after the cut are a second clear of it.
	time.Sleep(1100 * time.Millisecond)
	ingest(15)
	lastWritten := time.Now()

	exec(fmt.Sprintf("DROP TABLE %s.traces ON CLUSTER %s", db, env.CHCluster))
	rs, err := NewRestore(ctx, cfg, repo, RestoreRequest{Snapshot: m.ID, Only: config.SourceClickHouse})
	if err != nil {
		t.Fatal(err)
	}
	plan, err := rs.Plan(ctx, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := plan.Run(ctx); err != nil {
		t.Fatalf("restore: %v", err)
	}
	plan.Close()
	if got := rows(); len(got) != 20 {
		t.Fatalf("the snapshot restored %d traces, want the 20 before its cut", len(got))
	}

	res, err := ReplayEvents(ctx, cfg, repo, ReplayRequest{Snapshot: m.ID, Fresh: true, Restored: true}, quiet)
	if err != nil {
		t.Fatalf("replay: %v", err)
	}
	if got := rows(); !slices.Equal(got, ledger) {
		t.Fatalf("after the replay ClickHouse holds %d traces, want the %d acknowledged:\nmissing %v", len(got), len(ledger), missing(ledger, got))
	}
	// The recovery point gained: from the cut to the last event written before the loss.
	if res.Replay.Sent < 15 || int64(res.Replay.Sent) != replayed.Load() || res.Replay.Reached.Before(lastWritten.Add(-2*time.Second)) || !res.Replay.Done {
		t.Fatalf("replay %+v (worker saw %d); want the 15 events after the cut, up to %s", res.Replay, replayed.Load(), lastWritten)
	}
	if !strings.Contains(res.RecoveryPoint, "ClickHouse restored to the snapshot "+m.ID) || !strings.Contains(res.RecoveryPoint, "replayed") {
		t.Fatalf("recovery point %q", res.RecoveryPoint)
	}
	t.Logf("%s (recovery point gained: %.1fs over the snapshot's)", res.RecoveryPoint, res.Replay.Reached.Sub(res.Cut).Seconds())
	runs, err := (&History{Repo: repo, Limit: historyLimit}).Recent(ctx, 5)
	if err != nil || len(runs) == 0 || runs[0].Action != ActionReplayEvents || runs[0].RecoveryPoint != res.RecoveryPoint {
		t.Fatalf("run history %+v, %v; want the replay with its recovery point", runs, err)
	}
}

func missing(want, got []string) []string {
	var out []string
	for _, w := range want {
		if !slices.Contains(got, w) {
			out = append(out, w)
		}
	}
	return out
}
