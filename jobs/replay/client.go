package replay

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Route is Langfuse's admin replay route, relative to its base URL.
const Route = "/api/admin/ingestion-replay"

// MaxBatch is the most keys the route takes in one request.
const MaxBatch = 1000

// Answer is the route's 200 answer: keys queued for the worker, keys skipped, and a reason for
// each skipped key.
type Answer struct {
	Queued  int      `json:"queued"`
	Skipped int      `json:"skipped"`
	Errors  []string `json:"errors"`
}

// Client calls the route. The admin key is sent only in the Authorization header and never
// appears in an error or a log record.
type Client struct {
	// URL is Langfuse's base URL (LANGFUSE_HOST / NEXTAUTH_URL), e.g. https://langfuse.example.com.
	URL string
	// Key is the instance's ADMIN_API_KEY.
	Key  string
	HTTP *http.Client
	// Retries is how many times a request is repeated after a 429, a 5xx or a transport error.
	Retries int
	// Backoff is the first wait between attempts; it doubles (with jitter) up to MaxBackoff, or
	// follows the server's Retry-After.
	Backoff, MaxBackoff time.Duration
}

// StatusError is an answer other than 200.
type StatusError struct {
	Code int
	Body string // the route's error text, cut short
}

func (e *StatusError) Error() string {
	hint := ""
	switch e.Code {
	case http.StatusUnauthorized, http.StatusForbidden:
		hint = " (check [langfuse] admin_api_key against the instance's ADMIN_API_KEY)"
	case http.StatusNotFound, http.StatusMethodNotAllowed:
		hint = " (check [langfuse] url; a Langfuse older than February 2026 has no replay route)"
	}
	return fmt.Sprintf("HTTP %d: %s%s", e.Code, e.Body, hint)
}

// retryable says whether another attempt may succeed.
func (e *StatusError) retryable() bool {
	return e.Code == http.StatusTooManyRequests || e.Code >= 500
}

// Replay sends keys (1 to MaxBatch) and returns the route's answer, retrying what may pass on
// another attempt. A 200 is the acknowledgement: the keys are in Langfuse's queue.
func (c *Client) Replay(ctx context.Context, keys []string) (Answer, error) {
	if len(keys) == 0 || len(keys) > MaxBatch {
		return Answer{}, fmt.Errorf("replay %d keys: the route takes 1 to %d", len(keys), MaxBatch)
	}
	body, err := json.Marshal(map[string][]string{"keys": keys})
	if err != nil {
		return Answer{}, fmt.Errorf("encode replay request: %w", err)
	}
	wait := c.Backoff
	for attempt := 0; ; attempt++ {
		a, retryAfter, err := c.post(ctx, body)
		if err == nil {
			return a, nil
		}
		var se *StatusError
		if (errors.As(err, &se) && !se.retryable()) || ctx.Err() != nil || attempt >= c.Retries {
			return Answer{}, fmt.Errorf("replay %d keys via %s (attempt %d): %w", len(keys), c.endpoint(), attempt+1, err)
		}
		d := wait/2 + rand.N(wait/2+1)
		if retryAfter > 0 {
			d = retryAfter
		}
		select {
		case <-ctx.Done():
			return Answer{}, fmt.Errorf("replay %d keys via %s: %w", len(keys), c.endpoint(), ctx.Err())
		case <-time.After(d):
		}
		wait = min(wait*2, c.MaxBackoff)
	}
}

func (c *Client) endpoint() string { return strings.TrimSuffix(c.URL, "/") + Route }

// post makes one attempt; it returns the server's Retry-After with a retryable answer.
func (c *Client) post(ctx context.Context, body []byte) (Answer, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint(), bytes.NewReader(body))
	if err != nil {
		return Answer{}, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+c.Key)
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return Answer{}, 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return Answer{}, 0, fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return Answer{}, retryAfter(resp.Header.Get("Retry-After")), &StatusError{Code: resp.StatusCode, Body: errorText(raw)}
	}
	var a Answer
	if err := json.Unmarshal(raw, &a); err != nil {
		return Answer{}, 0, fmt.Errorf("decode answer %q: %w", errorText(raw), err)
	}
	return a, 0, nil
}

// errorText is the route's {"error": ...} message, or the body cut short.
func errorText(raw []byte) string {
	var e struct {
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal(raw, &e) == nil && len(e.Error) > 0 {
		var s string
		if json.Unmarshal(e.Error, &s) == nil {
			raw = []byte(s)
		} else {
			raw = e.Error
		}
	}
	s := strings.TrimSpace(string(raw))
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// retryAfter reads a Retry-After in seconds (the form rate limiters send), capped at a minute.
func retryAfter(h string) time.Duration {
	n, err := strconv.Atoi(strings.TrimSpace(h))
	if err != nil || n <= 0 {
		return 0
	}
	return min(time.Duration(n)*time.Second, time.Minute)
}
