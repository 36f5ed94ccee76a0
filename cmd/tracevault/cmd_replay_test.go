package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestReplayEventsCommandAgainstStubRoute runs replay-events end to end over a directory of
// events with set modification times and a stub of Langfuse's route that queues what it gets:
// the dry run counts and names, the run sends once, a rerun resumes a finished checkpoint and
// sends nothing, and the admin key never reaches the output.
func TestReplayEventsCommandAgainstStubRoute(t *testing.T) {
	const key = "sk-admin-never-printed"
	t.Setenv("TV_TEST_ADMIN_KEY", key)
	var (
		mu   sync.Mutex
		sent []string
	)
	stub := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+key {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var body struct{ Keys []string }
		_ = json.NewDecoder(r.Body).Decode(&body)
		mu.Lock()
		sent = append(sent, body.Keys...)
		mu.Unlock()
		fmt.Fprintf(w, `{"queued":%d,"skipped":0,"errors":[]}`, len(body.Keys))
	}))
	defer stub.Close()

	dir := t.TempDir()
	events := filepath.Join(dir, "blobs", "events")
	cut := time.Date(2026, 11, 30, 11, 45, 0, 0, time.UTC)
	for name, at := range map[string]time.Duration{
		"p1/trace/old/e0.json":               -10 * time.Minute,
		"p1/trace/t1/e1.json":                -time.Minute, // inside the 2m margin
		"p1/observation/o1/e2.json":          5 * time.Minute,
		"otel/p2/2026/11/30/11/58/e3.json":   13 * time.Minute,
		"p1/sdk_log/s1/e4.json":              6 * time.Minute,
		"p1/trace/not-an-event/e5.json.part": 7 * time.Minute,
	} {
		p := filepath.Join(events, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("{}"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, cut.Add(at), cut.Add(at)); err != nil {
			t.Fatal(err)
		}
	}
	cfg := catalogConfig(t, filepath.Join(dir, "repo"), fmt.Sprintf(`[blobs]
url = "file://%s"
[langfuse]
url = %q
admin_api_key = "env:TV_TEST_ADMIN_KEY"
replay_state = %q
replay_keys_per_second = 0
`, filepath.Join(dir, "blobs"), stub.URL, filepath.Join(dir, "state", "replay.json")))
	since := cut.Format(time.RFC3339)
	runSteps(t, cfg, []cliStep{
		{[]string{"init"}, 0, nil},
		{[]string{"replay-events"}, 2, []string{"give one of --snapshot ID"}},
		{[]string{"replay-events", "--since", "yesterday"}, 2, []string{"RFC 3339"}},
		{[]string{"replay-events", "--since", since, "--dry-run"}, 0, []string{
			"3 events to replay", "by project: p1 2, p2 1", "by type: observation 1, otel 1, trace 1",
			"2 keys cannot be replayed", "p1/sdk_log/s1/e4.json: unsupported replay type sdk_log",
			"p1/trace/not-an-event/e5.json.part: not a .json event", "would be replayed"}},
		{[]string{"replay-events", "--since", since}, 0, []string{"sent 3 keys in 1 batches", "Langfuse queued 3",
			"then 3 events written until 2026-11-30 11:58:00Z replayed"}},
		{[]string{"replay-events", "--since", since}, 0, []string{"sent 3 keys in 1 batches (3 by an earlier run)"}},
		{[]string{"restore", "latest", "--only", "postgres", "--replay-events"}, 2, []string{"--replay-events goes with --only clickhouse"}},
	})
	want := "[p1/trace/t1/e1.json p1/observation/o1/e2.json otel/p2/2026/11/30/11/58/e3.json]"
	if fmt.Sprint(sent) != want {
		t.Fatalf("sent %v, want %s (in time order, once)", sent, want)
	}
	for _, args := range [][]string{{"--json", "replay-events", "--since", since, "--fresh"}} {
		_, out, errOut := runCLI(append([]string{"--config", cfg}, args...)...)
		if strings.Contains(out+errOut, key) {
			t.Fatalf("the admin key was printed:\n%s%s", out, errOut)
		}
		if !strings.Contains(out, `"recovery_point"`) {
			t.Fatalf("--json output lacks the recovery point:\n%s", out)
		}
	}
}
