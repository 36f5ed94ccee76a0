package clickhouse

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
)

// HTTP is a replica's HTTP interface, used to stream Native data in and out: it carries the
// bytes straight to and from the repository without decoding them.
type HTTP struct {
	Addr     string // host:port
	User     string
	Password string
	Client   *http.Client
}

// Query runs sql and returns the response body. With body != nil, sql goes in the URL and body
// is the data (INSERT ... FORMAT Native); otherwise sql is the request body.
func (h *HTTP) Query(ctx context.Context, sql string, body io.Reader) (io.ReadCloser, error) {
	u := "http://" + h.Addr + "/"
	reqBody := body
	if body == nil {
		reqBody = strings.NewReader(sql)
	} else {
		u += "?query=" + url.QueryEscape(sql)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, reqBody)
	if err != nil {
		return nil, fmt.Errorf("clickhouse http %s: %w", h.Addr, err)
	}
	req.SetBasicAuth(h.User, h.Password)
	client := h.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("clickhouse http %s: %w", h.Addr, err)
	}
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		return nil, fmt.Errorf("clickhouse %s answered %s: %s", h.Addr, resp.Status, strings.TrimSpace(string(msg)))
	}
	return &tailChecked{rc: resp.Body, addr: h.Addr}, nil
}

// Exec runs a statement that returns nothing useful.
func (h *HTTP) Exec(ctx context.Context, sql string, body io.Reader) error {
	rc, err := h.Query(ctx, sql, body)
	if err != nil {
		return err
	}
	defer rc.Close()
	_, err = io.Copy(io.Discard, rc)
	return err
}

// A query that fails after ClickHouse has sent the 200 header ends its body with the exception
// text instead of an error status. Native data is binary, so the tail is checked for that text
// before EOF is passed on: a backup must never store a truncated partition as complete.
var exceptionTail = regexp.MustCompile(`Code: \d+[.,] (?:e\.displayText\(\) = )?DB::Exception`)

const tailSize = 4096

type tailChecked struct {
	rc   io.ReadCloser
	addr string
	tail []byte
	held []byte // bytes withheld until we know they are not the exception
	err  error
}

func (t *tailChecked) Read(p []byte) (int, error) {
	for len(t.held) <= tailSize && t.err == nil {
		buf := make([]byte, 64<<10)
		n, err := t.rc.Read(buf)
		t.held = append(t.held, buf[:n]...)
		t.err = err
	}
	if errors.Is(t.err, io.EOF) {
		if loc := exceptionTail.FindIndex(t.held); loc != nil {
			return 0, fmt.Errorf("clickhouse %s failed mid-stream: %s", t.addr, bytes.TrimSpace(t.held[loc[0]:]))
		}
		n := copy(p, t.held)
		t.held = t.held[n:]
		if len(t.held) == 0 {
			return n, io.EOF
		}
		return n, nil
	}
	if t.err != nil {
		return 0, fmt.Errorf("clickhouse %s: %w", t.addr, t.err)
	}
	// Pass on all but the last tailSize bytes, which may yet turn out to be an exception.
	n := copy(p, t.held[:len(t.held)-tailSize])
	t.held = t.held[n:]
	return n, nil
}

func (t *tailChecked) Close() error { return t.rc.Close() }
