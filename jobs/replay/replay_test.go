package replay

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const testKey = "sk-admin-test-0123456789"

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func testClient(url, key string) *Client {
	return &Client{URL: url, Key: key, Retries: 3, Backoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}
}

// events makes n replayable events a second apart, from t0, across two projects and types.
func events(n int, t0 time.Time) []Event {
	out := make([]Event, n)
	for i := range out {
		typ := []string{"trace", "observation", "score"}[i%3]
		out[i] = Event{Key: fmt.Sprintf("proj-%d/%s/body-%05d/ev-%05d.json", i%2, typ, i, i), Modified: t0.Add(time.Duration(i) * time.Second)}
	}
	return out
}

func selectionOf(ev []Event) *Selection {
	return &Selection{Events: ev, Count: len(ev)}
}

// TestReplayAgainstFakeLangfuseRoute holds the client and the fake route to Langfuse's contract:
// what each kind of request is answered, and how the client reports it.
func TestReplayAgainstFakeLangfuseRoute(t *testing.T) {
	_, srv := newFakeRoute(t, testKey)
	cases := []struct {
		name    string
		key     string
		keys    []string
		want    Answer
		wantErr string
	}{
		{name: "standard and otel keys queued", key: testKey,
			keys: []string{"p1/trace/t1/e1.json", "p1/observation/o/with/slash/e2.json", "otel/p1/2026/12/06/11/58/batch-1.json"},
			want: Answer{Queued: 3, Errors: []string{}}},
		{name: "unknown type and malformed key skipped with reasons", key: testKey,
			keys: []string{"p1/sdk_log/b/e.json", "p1/trace/e.json", "p1/score/b/e.json"},
			want: Answer{Queued: 1, Skipped: 2, Errors: []string{"Unsupported replay type: sdk_log", "Invalid key format: p1/trace/e.json"}}},
		{name: "wrong admin key refused unretried", key: "sk-admin-wrong-0123456789", keys: []string{"p/trace/b/e.json"},
			wantErr: "HTTP 401: Unauthorized: Invalid token"},
		{name: "no admin key refused", key: "", keys: []string{"p/trace/b/e.json"},
			wantErr: "HTTP 401: Unauthorized: Invalid token"},
		{name: "more than 1000 keys refused before sending", key: testKey, keys: make([]string, 1001),
			wantErr: "the route takes 1 to 1000"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, err := testClient(srv.URL, tc.key).Replay(context.Background(), tc.keys)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				if tc.key != "" && strings.Contains(err.Error(), tc.key) {
					t.Fatalf("error names the admin key: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(a) != fmt.Sprint(tc.want) {
				t.Fatalf("answer %+v, want %+v", a, tc.want)
			}
		})
	}

	// What the client never sends, the route still answers as Langfuse does.
	raw := []struct {
		name, method, auth, body string
		code                     int
	}{
		{"GET is 405", http.MethodGet, "Bearer " + testKey, "", http.StatusMethodNotAllowed},
		{"no header is 401", http.MethodPost, "", `{"keys":["a"]}`, http.StatusUnauthorized},
		{"basic auth is 401", http.MethodPost, "Basic " + testKey, `{"keys":["a"]}`, http.StatusUnauthorized},
		{"empty keys is 400", http.MethodPost, "Bearer " + testKey, `{"keys":[]}`, http.StatusBadRequest},
		{"no keys is 400", http.MethodPost, "Bearer " + testKey, `{}`, http.StatusBadRequest},
		{"keys not strings is 400", http.MethodPost, "Bearer " + testKey, `{"keys":[1]}`, http.StatusBadRequest},
		{"over 1 MB is 413", http.MethodPost, "Bearer " + testKey, `{"keys":["` + strings.Repeat("a", 1<<20) + `"]}`, http.StatusRequestEntityTooLarge},
	}
	for _, tc := range raw {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, srv.URL+Route, strings.NewReader(tc.body))
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.code {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.code)
			}
		})
	}
}

// TestReplayBatchesAtThousandAgainstFakeLangfuseRoute sends 2,500 events: three requests of
// 1000, 1000 and 500 keys in time order, each key once, and the checkpoint says done.
func TestReplayBatchesAtThousandAgainstFakeLangfuseRoute(t *testing.T) {
	f, srv := newFakeRoute(t, testKey)
	ev := events(2500, time.Date(2026, 12, 6, 11, 45, 0, 0, time.UTC))
	state := filepath.Join(t.TempDir(), "ck.json")
	ck := &Checkpoint{Container: "c", Window: Window{Since: ev[0].Modified.Add(-time.Minute), Until: ev[len(ev)-1].Modified}}
	res, err := Send(context.Background(), Options{Client: testClient(srv.URL, testKey), Batch: MaxBatch, StatePath: state, Log: quiet()}, selectionOf(ev), ck)
	if err != nil {
		t.Fatal(err)
	}
	received, _ := f.batches()
	var sizes []int
	var order []string
	for _, b := range received {
		sizes = append(sizes, len(b))
		order = append(order, b...)
	}
	if fmt.Sprint(sizes) != "[1000 1000 500]" {
		t.Fatalf("batch sizes %v, want [1000 1000 500]", sizes)
	}
	for i, k := range order {
		if k != ev[i].Key {
			t.Fatalf("key %d is %s, want %s (time order)", i, k, ev[i].Key)
		}
	}
	if !res.Done || res.Sent != 2500 || res.Queued != 2500 || !res.Reached.Equal(ev[2499].Modified) {
		t.Fatalf("result %+v", res)
	}
	saved, err := LoadCheckpoint(state)
	if err != nil || saved == nil || !saved.Done || saved.Sent != 2500 {
		t.Fatalf("checkpoint %+v, %v", saved, err)
	}
	// A finished replay sends nothing again.
	again, err := Send(context.Background(), Options{Client: testClient(srv.URL, testKey), StatePath: state, Log: quiet()}, selectionOf(ev), saved)
	if received, _ = f.batches(); err != nil || len(received) != 3 || again.Sent != 2500 {
		t.Fatalf("rerun sent more: %d requests, %+v, %v", len(received), again, err)
	}
}

// TestReplayRetriesAgainstFakeLangfuseRoute: 429 and 5xx answers are retried (within the bound),
// a refusal is not, and a batch is acknowledged only by a 200.
func TestReplayRetriesAgainstFakeLangfuseRoute(t *testing.T) {
	cases := []struct {
		name     string
		answers  []int // the statuses of the first requests; 200 after them
		requests int
		wantErr  string
	}{
		{name: "429 then 500 then 503 then ok", answers: []int{429, 500, 503}, requests: 4},
		{name: "500 past the bound fails", answers: []int{500, 500, 500, 500, 500}, requests: 4, wantErr: "HTTP 500"},
		{name: "400 is not retried", answers: []int{400}, requests: 1, wantErr: "HTTP 400"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, srv := newFakeRoute(t, testKey)
			f.failWith(func(n int, w http.ResponseWriter, _ *http.Request) bool {
				if n >= len(tc.answers) {
					return false
				}
				if tc.answers[n] == 429 {
					w.Header().Set("Retry-After", "0")
				}
				answer(w, tc.answers[n], map[string]string{"error": "injected"})
				return true
			})
			ev := events(10, time.Now())
			state := filepath.Join(t.TempDir(), "ck.json")
			ck := &Checkpoint{Container: "c"}
			res, err := Send(context.Background(), Options{Client: testClient(srv.URL, testKey), StatePath: state, Log: quiet()}, selectionOf(ev), ck)
			received, acked := f.batches()
			if len(received) != tc.requests {
				t.Fatalf("%d requests, want %d", len(received), tc.requests)
			}
			if tc.wantErr == "" {
				if err != nil || res.Sent != 10 || len(acked) != 1 {
					t.Fatalf("result %+v, %v; acked %d", res, err, len(acked))
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want %q", err, tc.wantErr)
			}
			if res.Sent != 0 || ck.Position != nil {
				t.Fatalf("an unacknowledged batch counted as sent: %+v", res)
			}
		})
	}
}

func TestSplitKeepsBatchesUnderTheBodyLimit(t *testing.T) {
	ev := make([]Event, 10)
	for i := range ev {
		ev[i] = Event{Key: strings.Repeat("k", 92)} // 100 bytes with quoting
	}
	cases := []struct {
		n, bytes int
		want     string
	}{
		{n: 1000, bytes: 1 << 20, want: "[10]"},
		{n: 4, bytes: 1 << 20, want: "[4 4 2]"},
		{n: 1000, bytes: 350, want: "[3 3 3 1]"},
	}
	for _, tc := range cases {
		var sizes []int
		for _, b := range split(ev, tc.n, tc.bytes) {
			sizes = append(sizes, len(b))
		}
		if got := fmt.Sprint(sizes); got != tc.want {
			t.Errorf("split(n=%d, bytes=%d) = %s, want %s", tc.n, tc.bytes, got, tc.want)
		}
	}
}

func TestClassify(t *testing.T) {
	cases := []struct {
		key, project, entity string
		ok                   bool
	}{
		{"p1/trace/b/e.json", "p1", "trace", true},
		{"p1/observation/b/c/e.json", "p1", "observation", true},
		{"otel/p1/2026/12/06/11/58/x.json", "p1", "otel", true},
		{"otel/p1/2026/12/06/x.json", "", "", false},
		{"p1/sdk_log/b/e.json", "p1", "sdk_log", false},
		{"p1/dataset_run_item/b/e.json", "p1", "dataset_run_item", false},
		{"p1/trace/b/e.txt", "", "", false},
		{"p1/trace/e.json", "", "", false},
	}
	for _, tc := range cases {
		p, e, reason := Classify(tc.key)
		if p != tc.project || e != tc.entity || (reason == "") != tc.ok {
			t.Errorf("Classify(%q) = %q, %q, %q", tc.key, p, e, reason)
		}
	}
}
