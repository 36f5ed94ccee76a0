package clickhouse

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tracevault/tracevault/snapshot/clickhouse/native"
)

// HTTP is a replica's HTTP interface, used to stream Native data in and out: it carries the
// bytes straight to and from the repository, checking their structure but not decoding them.
type HTTP struct {
	Addr     string // host:port
	User     string
	Password string
	Client   *http.Client
	// Settings go with every query, in the URL (e.g. optimize_on_insert=0 for a restore's
	// INSERT).
	Settings url.Values
	// StallTimeout ends an export whose server has sent nothing for this long, or a Load whose
	// server has neither read data nor answered for this long (default defaultStallTimeout): a
	// connection can stay open and carry nothing, a server stuck on a lock or a peer gone behind
	// a middlebox that still answers keepalives, and no other bound than the job's timeout
	// would end it.
	StallTimeout time.Duration
}

// defaultStallTimeout is HTTP.StallTimeout when unset: the native protocol's read timeout in
// clickhouse-go, and far above the seconds a loaded server takes to read one block.
const defaultStallTimeout = 5 * time.Minute

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
	return h.exec(ctx, sql, body, "")
}

// exec runs a statement with params added to the URL's, and reads its answer to the end.
func (h *HTTP) exec(ctx context.Context, sql string, body io.Reader, params string) error {
	if params != "" {
		params = "&" + params
	}
	rc, err := h.do(ctx, sql, body, "wait_end_of_query=1"+params)
	if err != nil {
		return err
	}
	defer rc.Close()
	if _, err = io.Copy(io.Discard, rc); err != nil {
		// The answer broke off: whether the statement took effect is unknown.
		return h.scrub(fmt.Errorf("%w: clickhouse http %s: read the answer: %w", errBrokenOff, h.Addr, err))
	}
	return nil
}

// QueryNative streams the result of a SELECT ... FORMAT Native. A query that fails after the
// server sent its 200 header ends the body with the exception text where a block should start;
// the stream's structure is checked block by block (see package native), so that is an error
// from Read rather than a truncated result, whatever the data itself says.
func (h *HTTP) QueryNative(ctx context.Context, sql string, opts ...native.Option) (*NativeStream, error) {
	rc, err := h.export(ctx, sql, "")
	if err != nil {
		return nil, err
	}
	return &NativeStream{body: rc, r: native.NewReader(rc, opts...), h: h}, nil
}

// export sends an export's query and returns its body, both watched for a stall; a failure of
// the connection, not of the query, has errBrokenOff in its chain.
func (h *HTTP) export(ctx context.Context, sql, params string) (io.ReadCloser, error) {
	w := h.watch(ctx, "sent nothing")
	rc, err := h.do(w.ctx, sql, nil, params)
	if err != nil {
		w.stop()
		return nil, w.cause(err)
	}
	return &watchedBody{addr: h.Addr, body: rc, w: w}, nil
}

// stallWatch cancels a request when its connection carries nothing for idle, with the stall as
// the cause (errBrokenOff in its chain): a connection can stay open and carry nothing, a server
// stuck on a lock or a peer gone behind a middlebox that still answers keepalives, and no other
// bound than the job's timeout would end it.
type stallWatch struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	timer  *time.Timer
	idle   time.Duration
}

// watch starts a stall watch over a request made with the returned watch's ctx; stalled says
// what the server did not do, for the error.
func (h *HTTP) watch(ctx context.Context, stalled string) *stallWatch {
	d := h.StallTimeout
	if d <= 0 {
		d = defaultStallTimeout
	}
	ctx, cancel := context.WithCancelCause(ctx)
	w := &stallWatch{ctx: ctx, cancel: cancel, idle: d}
	w.timer = time.AfterFunc(d, func() {
		cancel(fmt.Errorf("clickhouse %s %s for %s ([clickhouse] stall_timeout): %w", h.Addr, stalled, d, errBrokenOff))
	})
	return w
}

// touch says the connection carried something.
func (w *stallWatch) touch() { w.timer.Reset(w.idle) }

func (w *stallWatch) stop() {
	w.timer.Stop()
	w.cancel(nil)
}

// cause is the stall when that is what ended the request, else err.
func (w *stallWatch) cause(err error) error {
	if c := context.Cause(w.ctx); errors.Is(c, errBrokenOff) {
		return c
	}
	return err
}

// watchedBody is an export's response body: its request is cancelled when no byte arrives for
// the watch's idle time, and its errors say the connection broke off.
type watchedBody struct {
	addr string
	body io.ReadCloser
	w    *stallWatch
}

func (b *watchedBody) Read(p []byte) (int, error) {
	n, err := b.body.Read(p)
	if n > 0 {
		b.w.touch()
	}
	if err != nil && err != io.EOF {
		err = b.w.cause(fmt.Errorf("%w: clickhouse %s: %w", errBrokenOff, b.addr, err))
	}
	return n, err
}

func (b *watchedBody) Close() error {
	b.w.timer.Stop()
	err := b.body.Close()
	b.w.cancel(nil)
	return err
}

func (h *HTTP) do(ctx context.Context, sql string, body io.Reader, params string) (io.ReadCloser, error) {
	u := "http://" + h.Addr + "/?" + params
	if len(h.Settings) > 0 {
		u += "&" + h.Settings.Encode()
	}
	var reqBody io.Reader = strings.NewReader(sql)
	var sent *sentBody
	if body != nil {
		u += "&query=" + url.QueryEscape(sql)
		sent = &sentBody{r: body}
		reqBody = sent
	}
	// The connection is known, so that the server's answer can be read from it when the
	// transport reports a failed write instead (see replyConn).
	var conn *replyConn
	sending := false
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) {
		sending = true
		if c, ok := i.Conn.(*replyConn); ok {
			c.begin()
			conn = c
		}
	}})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, reqBody)
	if err != nil {
		return nil, h.scrub(fmt.Errorf("clickhouse http %s: %w", h.Addr, err))
	}
	// Credentials go in the Authorization header: never in the URL or the SQL, where the
	// server's query_log, a proxy's log or an error message would show them.
	req.SetBasicAuth(h.User, h.Password)
	client := h.Client
	if client == nil {
		client = defaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		if !sending {
			// No connection: the server never saw the query.
			return nil, &unsentError{h.scrub(fmt.Errorf("%w: clickhouse http %s: %w", errBrokenOff, h.Addr, err))}
		}
		return nil, h.failed(err, sent, conn)
	}
	if refused(resp) {
		defer resp.Body.Close()
		return nil, h.refusal(resp, nil)
	}
	return resp.Body, nil
}

// refused says whether a response is the server's refusal or failure of the query.
func refused(resp *http.Response) bool {
	return resp.StatusCode != http.StatusOK || resp.Header.Get("X-ClickHouse-Exception-Code") != ""
}

// refusal is the error of a query the server answered with an exception: its status, and the
// start of its text. broke is the connection's failure when the answer was read from a
// connection that broke while the request was being sent.
func (h *HTTP) refusal(resp *http.Response, broke error) error {
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	// The body is the server's message, or with a 200 and the exception header possibly
	// data: only text is quoted.
	txt, ok := native.Text(msg, 1000)
	if !ok {
		txt = fmt.Sprintf("(%d bytes that are not text)", len(msg))
	}
	err := fmt.Errorf("clickhouse %s answered %s: %s", h.Addr, resp.Status, txt)
	if broke != nil {
		err = fmt.Errorf("%w (and closed the connection while the data was still being sent: %v)", err, broke)
	}
	return &statusError{h.scrub(err)}
}

// failed explains a request that got no response from the transport: the data to send could not
// be read (its own error), or the server answered before the connection broke (its answer), or
// the connection failed unanswered (errBrokenOff).
func (h *HTTP) failed(err error, sent *sentBody, conn *replyConn) error {
	if bodyErr := sent.failure(); bodyErr != nil && errors.Is(err, bodyErr) {
		return h.scrub(fmt.Errorf("clickhouse http %s: read the data to send: %w", h.Addr, bodyErr))
	}
	if conn != nil {
		if resp := conn.answer(); resp != nil && refused(resp) {
			return h.refusal(resp, err)
		}
		err = conn.broke(err)
	}
	return h.scrub(fmt.Errorf("%w: clickhouse http %s: %w", errBrokenOff, h.Addr, err))
}

// sentBody is a request's data, remembering its own failure: an error of the transport that is
// this one is no failure of the connection.
type sentBody struct {
	r   io.Reader
	mu  sync.Mutex
	err error
}

func (b *sentBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		b.mu.Lock()
		b.err = err
		b.mu.Unlock()
	}
	return n, err
}

func (b *sentBody) failure() error {
	if b == nil {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

// statusError is the server's answer to a query it refused or failed: the connection worked.
type statusError struct{ error }

func (e *statusError) Unwrap() error { return e.error }

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
	case errors.Is(err, errBrokenOff):
		// The bytes so far were whole blocks: the stream is not malformed, only cut short.
	case errors.As(err, &ne):
		err = fmt.Errorf("clickhouse %s sent a malformed Native stream: %w", s.h.Addr, err)
	default:
		err = fmt.Errorf("clickhouse %s: %w", s.h.Addr, err)
	}
	return n, s.h.scrub(err)
}

// Rows is the number of rows the stream held, once Read returned io.EOF.
func (s *NativeStream) Rows() int64 { return s.r.Rows() }

// Newest is the newest value of the column native.Newest named, once Read returned io.EOF.
func (s *NativeStream) Newest() (string, time.Time) { return s.r.Newest() }

// RowHashSum is the sum of the column native.RowHash took out, once read to the end.
func (s *NativeStream) RowHashSum() (uint64, bool) { return s.r.RowHashSum() }

// Close ends the request; the body goes first, so a check blocked reading it returns.
func (s *NativeStream) Close() error {
	err := s.body.Close()
	s.r.Close()
	return err
}

// QueryLogged streams the result of a query whose bytes tracevault cannot check (a column type
// the Native scanner cannot walk): the server logs the query under an id of tracevault's
// choosing, and once the body has ended the server's own record of that query, not the data,
// says whether it finished and how many rows it sent. The user needs SELECT on
// system.query_log and SYSTEM FLUSH LOGS, and the server a query_log in its configuration.
func (h *HTTP) QueryLogged(ctx context.Context, sql string) (*LoggedStream, error) {
	id, err := newQueryID()
	if err != nil {
		return nil, err
	}
	rc, err := h.export(ctx, sql, "log_queries=1&query_id="+url.QueryEscape(id))
	if err != nil {
		return nil, err
	}
	return &LoggedStream{ctx: ctx, body: rc, h: h, id: id}, nil
}

func newQueryID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("make a query id: %w", err)
	}
	return "tracevault-" + hex.EncodeToString(b), nil
}

// LoggedStream is a query's result whose verdict comes from system.query_log: its bytes
// unchanged, then io.EOF only if the server logged the query as finished.
type LoggedStream struct {
	ctx  context.Context
	body io.ReadCloser
	h    *HTTP
	id   string
	rows int64
	err  error // the verdict, once the body ended
}

func (s *LoggedStream) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	n, err := s.body.Read(p)
	if errors.Is(err, io.EOF) {
		rows, verdict := s.h.queryResult(s.ctx, s.id)
		if s.rows, s.err = rows, verdict; verdict == nil {
			s.err = io.EOF
		}
		err = s.err
	} else if err != nil {
		// A modern server breaks the response off when the query fails mid-stream: its
		// record names the exception.
		s.err = s.h.scrub(fmt.Errorf("clickhouse %s: the result broke off: %w", s.h.Addr, err))
		if _, verdict := s.h.queryResult(s.ctx, s.id); verdict != nil {
			// The record names the exception; the broken connection stays in the chain, as a
			// cut connection is also logged as a failed query.
			s.err = fmt.Errorf("%w (%w)", verdict, err)
		}
		err = s.err
	}
	return n, err
}

// Rows is the number of rows the server logged as sent, once Read returned io.EOF.
func (s *LoggedStream) Rows() int64 {
	if s.err != io.EOF {
		return 0
	}
	return s.rows
}

// QueryID is the id the server logged the query under.
func (s *LoggedStream) QueryID() string { return s.id }

func (s *LoggedStream) Close() error { return s.body.Close() }

// queryLogWait bounds how long queryResult waits for a finished query's record: the server
// writes it when the query ends, which may be a moment after the client read the last byte.
var queryLogWait = 10 * time.Second

// queryResult reads the server's record of a finished query: its result rows, or its
// exception as an error. Only the server's own columns are read, never the result's data.
func (h *HTTP) queryResult(ctx context.Context, id string) (int64, error) {
	// type is a UInt8 on 18.16 and an Enum8 of the same values later: 2 QueryFinish,
	// 3 ExceptionBeforeStart, 4 ExceptionWhileProcessing. 64-bit counts are quoted in JSON.
	sql := "SELECT toUInt8(type) AS kind, toString(result_rows) AS result_rows, exception FROM system.query_log WHERE query_id = " + QuoteString(id) +
		" AND toUInt8(type) IN (2, 3, 4) FORMAT JSONEachRow"
	deadline := time.Now().Add(queryLogWait)
	for {
		if err := h.Exec(ctx, "SYSTEM FLUSH LOGS", nil); err != nil {
			return 0, fmt.Errorf("flush the query log of clickhouse %s to check query %s: %w", h.Addr, id, err)
		}
		rec, found, err := h.queryLogRecord(ctx, sql)
		if err != nil {
			return 0, fmt.Errorf("read the query log of clickhouse %s to check query %s (the user needs SELECT on system.query_log): %w", h.Addr, id, err)
		}
		if found {
			return rec.verdict(h.Addr, id)
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("clickhouse %s has no record of query %s in system.query_log after %s, so its result cannot be checked: enable query_log in the server's configuration", h.Addr, id, queryLogWait)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// queryLogRow is one record of system.query_log, as queryResult selects it.
type queryLogRow struct {
	Kind      uint8  `json:"kind"`
	Rows      string `json:"result_rows"`
	Exception string `json:"exception"`
}

// query_log's types of a query that ended.
var queryLogKinds = map[uint8]string{2: "QueryFinish", 3: "ExceptionBeforeStart", 4: "ExceptionWhileProcessing"}

func (h *HTTP) queryLogRecord(ctx context.Context, sql string) (queryLogRow, bool, error) {
	rc, err := h.Query(ctx, sql, nil)
	if err != nil {
		return queryLogRow{}, false, err
	}
	defer rc.Close()
	dec := json.NewDecoder(io.LimitReader(rc, 1<<20))
	var rec queryLogRow
	found := false
	for {
		var r queryLogRow
		if err := dec.Decode(&r); errors.Is(err, io.EOF) {
			return rec, found, nil
		} else if err != nil {
			return queryLogRow{}, false, err
		}
		// An exception outranks a finish: a query logged both ways did not deliver its rows.
		if !found || r.Kind != 2 {
			rec, found = r, true
		}
	}
}

func (r queryLogRow) verdict(addr, id string) (int64, error) {
	if r.Kind != 2 {
		msg, ok := native.Text([]byte(r.Exception), 500)
		if !ok {
			msg = "(an exception that is not text)"
		}
		kind, known := queryLogKinds[r.Kind]
		if !known {
			kind = fmt.Sprintf("type %d", r.Kind)
		}
		return 0, fmt.Errorf("clickhouse %s logged query %s as %s: %s", addr, id, kind, msg)
	}
	rows, err := strconv.ParseInt(r.Rows, 10, 64)
	if err != nil || rows < 0 {
		return 0, fmt.Errorf("clickhouse %s logged query %s with result_rows %q, not a count", addr, id, r.Rows)
	}
	return rows, nil
}
