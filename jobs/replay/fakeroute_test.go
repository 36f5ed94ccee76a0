package replay

import (
	"crypto/subtle"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
)

// fakeRoute implements Langfuse's POST /api/admin/ingestion-replay as its source
// (web/src/pages/api/admin/ingestion-replay.ts and its AdminApiAuthService) does: 405 for another
// method; 401 without a Bearer token equal to ADMIN_API_KEY; 413 past Next.js's 1 MB body limit;
// 400 unless the body is {"keys": [...]} with 1 to 1000 strings; then per key: an otel/ key
// queued, a standard key queued when "<type>-create" is an event type, else skipped with a
// reason; 200 {"queued","skipped","errors"}. It records what it received, and fail lets a test
// answer a request with a status instead.
type fakeRoute struct {
	key string

	mu       sync.Mutex
	received [][]string // every well-formed request's keys, acknowledged or not
	acked    [][]string
	// fail, when set, may answer a request (given its index among well-formed requests) itself.
	fail func(n int, w http.ResponseWriter, r *http.Request) bool
}

// The route's own regular expressions, kept apart from Classify's so the fake is an independent
// reading of Langfuse's source.
var (
	routeOtel     = regexp.MustCompile(`^otel/([^/]+)/(\d{4})/(\d{2})/(\d{2})/(\d{2})/(\d{2})/([^.]+)\.json$`)
	routeStandard = regexp.MustCompile(`^([^/]+)/([^/]+)/(.+)/([^/]+)\.json$`)
	// routeEventTypes are Langfuse's ingestion event types (eventTypes in packages/shared).
	routeEventTypes = map[string]bool{
		"trace-create": true, "score-create": true, "span-create": true, "span-update": true,
		"generation-create": true, "generation-update": true, "event-create": true, "sdk-log": true,
		"observation-create": true, "observation-update": true, "dataset-run-item-create": true,
		"agent-create": true, "tool-create": true, "chain-create": true, "retriever-create": true,
		"evaluator-create": true, "embedding-create": true, "guardrail-create": true,
	}
)

func newFakeRoute(t *testing.T, key string) (*fakeRoute, *httptest.Server) {
	f := &fakeRoute{key: key}
	mux := http.NewServeMux()
	mux.HandleFunc(Route, f.serve)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return f, srv
}

func answer(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func (f *fakeRoute) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		answer(w, http.StatusMethodNotAllowed, map[string]string{"error": "Method Not Allowed"})
		return
	}
	auth := r.Header.Get("Authorization")
	if auth == "" {
		answer(w, http.StatusUnauthorized, map[string]string{"error": "Unauthorized: No authorization header provided"})
		return
	}
	scheme, token, _ := strings.Cut(auth, " ")
	if scheme != "Bearer" || token == "" || len(token) != len(f.key) || subtle.ConstantTimeCompare([]byte(token), []byte(f.key)) != 1 {
		answer(w, http.StatusUnauthorized, map[string]string{"error": "Unauthorized: Invalid token"})
		return
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, 1<<20+1))
	if err != nil || len(raw) > 1<<20 {
		answer(w, http.StatusRequestEntityTooLarge, map[string]string{"error": "Body exceeded 1mb limit"})
		return
	}
	var body struct {
		Keys *[]string `json:"keys"`
	}
	if err := json.Unmarshal(raw, &body); err != nil || body.Keys == nil || len(*body.Keys) < 1 || len(*body.Keys) > MaxBatch {
		answer(w, http.StatusBadRequest, map[string]any{"error": map[string]string{"name": "ZodError", "message": "keys: expected 1 to 1000 strings"}})
		return
	}
	keys := *body.Keys
	f.mu.Lock()
	n := len(f.received)
	f.received = append(f.received, keys)
	fail := f.fail
	f.mu.Unlock()
	if fail != nil && fail(n, w, r) {
		return
	}
	queued, skipped, errs := 0, 0, []string{}
	for _, k := range keys {
		if routeOtel.MatchString(k) {
			queued++
			continue
		}
		if m := routeStandard.FindStringSubmatch(k); m != nil {
			if routeEventTypes[m[2]+"-create"] {
				queued++
			} else {
				skipped++
				errs = append(errs, "Unsupported replay type: "+m[2])
			}
			continue
		}
		skipped++
		errs = append(errs, "Invalid key format: "+k)
	}
	f.mu.Lock()
	f.acked = append(f.acked, keys)
	f.mu.Unlock()
	answer(w, http.StatusOK, map[string]any{"queued": queued, "skipped": skipped, "errors": errs})
}

// failWith makes fn answer requests first (see fail).
func (f *fakeRoute) failWith(fn func(n int, w http.ResponseWriter, r *http.Request) bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = fn
}

// batches returns the keys of every well-formed request and of every acknowledged one.
func (f *fakeRoute) batches() (received, acked [][]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.received), slices.Clone(f.acked)
}

// counts says how often each key was received and acknowledged.
func (f *fakeRoute) counts() (received, acked map[string]int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	received, acked = map[string]int{}, map[string]int{}
	for _, b := range f.received {
		for _, k := range b {
			received[k]++
		}
	}
	for _, b := range f.acked {
		for _, k := range b {
			acked[k]++
		}
	}
	return received, acked
}
