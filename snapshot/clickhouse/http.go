package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/tracevault/tracevault/snapshot/clickhouse/native"
)

// HTTP is a replica's HTTP interface, used to stream Native data in and out: it carries the
// bytes straight to and from the repository, checking their structure but not decoding them.
type HTTP struct {
	Addr     string // host:port
	User     string
	Password string
	Client   *http.Client
}

// Query runs sql and returns the response body. With body != nil, sql goes in the URL and body
// is the data (INSERT ... FORMAT Native); otherwise sql is the request body. The server holds
// the result until the query has finished (wait_end_of_query), so a failure is always an error
// status, never text appended to a 200 body: use it for small results, and QueryNative for
// exports.
func (h *HTTP) Query(ctx context.Context, sql string, body io.Reader) (io.ReadCloser, error) {
	return h.do(ctx, sql, body, "wait_end_of_query=1")
}

// Exec runs a statement that returns nothing useful.
func (h *HTTP) Exec(ctx context.Context, sql string, body io.Reader) error {
	rc, err := h.Query(ctx, sql, body)
	if err != nil {
		return err
	}
	defer rc.Close()
	_, err = io.Copy(io.Discard, rc)
	return h.scrub(err)
}

// QueryNative streams the result of a SELECT ... FORMAT Native. A query that fails after the
// server sent its 200 header ends the body with the exception text where a block should start;
// the stream's structure is checked block by block (see package native), so that is an error
// from Read rather than a truncated result, whatever the data itself says.
func (h *HTTP) QueryNative(ctx context.Context, sql string) (*NativeStream, error) {
	rc, err := h.do(ctx, sql, nil, "")
	if err != nil {
		return nil, err
	}
	return &NativeStream{body: rc, r: native.NewReader(rc), h: h}, nil
}

func (h *HTTP) do(ctx context.Context, sql string, body io.Reader, params string) (io.ReadCloser, error) {
	u := "http://" + h.Addr + "/?" + params
	reqBody := body
	if body == nil {
		reqBody = strings.NewReader(sql)
	} else {
		u += "&query=" + url.QueryEscape(sql)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, reqBody)
	if err != nil {
		return nil, h.scrub(fmt.Errorf("clickhouse http %s: %w", h.Addr, err))
	}
	// Credentials go in the Authorization header: never in the URL or the SQL, where the
	// server's query_log, a proxy's log or an error message would show them.
	req.SetBasicAuth(h.User, h.Password)
	client := h.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, h.scrub(fmt.Errorf("clickhouse http %s: %w", h.Addr, err))
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-ClickHouse-Exception-Code") != "" {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		// The body is the server's message, or with a 200 and the exception header possibly
		// data: only text is quoted.
		txt, ok := native.Text(msg, 1000)
		if !ok {
			txt = fmt.Sprintf("(%d bytes that are not text)", len(msg))
		}
		return nil, h.scrub(fmt.Errorf("clickhouse %s answered %s: %s", h.Addr, resp.Status, txt))
	}
	return resp.Body, nil
}

// scrub removes the password from an error: a server may quote the request it refused.
func (h *HTTP) scrub(err error) error {
	if err == nil || h.Password == "" || !strings.Contains(err.Error(), h.Password) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), h.Password, "********"))
}

// NativeStream is a checked Native result: its bytes unchanged, then io.EOF only if they were
// whole, well-formed blocks.
type NativeStream struct {
	body io.ReadCloser
	r    *native.Reader
	h    *HTTP
}

func (s *NativeStream) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err == nil || errors.Is(err, io.EOF) {
		return n, err
	}
	var ne *native.Error
	var unsupported *native.UnsupportedError
	switch {
	case errors.As(err, &ne) && errors.As(err, &unsupported):
		err = fmt.Errorf("clickhouse %s: column %q has type %s, whose values tracevault cannot check in a Native stream (%s is unknown to it): exclude the table from the backup, or use mode = \"freeze\"", s.h.Addr, ne.Column, ne.Type, unsupported.Type)
	case errors.As(err, &ne) && ne.ServerText != "":
		err = fmt.Errorf("clickhouse %s failed mid-stream: %s", s.h.Addr, ne.ServerText)
	case errors.As(err, &ne):
		err = fmt.Errorf("clickhouse %s sent a malformed Native stream: %w", s.h.Addr, err)
	default:
		err = fmt.Errorf("clickhouse %s: %w", s.h.Addr, err)
	}
	return n, s.h.scrub(err)
}

// Rows is the number of rows the stream held, once Read returned io.EOF.
func (s *NativeStream) Rows() int64 { return s.r.Rows() }

// Close ends the request; the body goes first, so a check blocked reading it returns.
func (s *NativeStream) Close() error {
	err := s.body.Close()
	s.r.Close()
	return err
}
