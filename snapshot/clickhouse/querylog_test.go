package clickhouse

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestQueryLoggedTakesTheVerdictFromTheQueryLog serves an export whose bytes say nothing (a
// type the scanner cannot walk) and a query_log that does: only a QueryFinish record ends the
// stream with io.EOF and its rows; an exception, or no record at all, is an error, whatever
// the exported bytes hold.
func TestQueryLoggedTakesTheVerdictFromTheQueryLog(t *testing.T) {
	defer func(d time.Duration) { queryLogWait = d }(queryLogWait)
	queryLogWait = 300 * time.Millisecond
	data := "bytes of states tracevault cannot walk, even one saying Code: 241. DB::Exception: fine"
	tests := []struct {
		name    string
		log     string // JSONEachRow lines of system.query_log for the export's id
		rows    int64
		wantErr string
	}{
		{"finished", `{"kind":2,"result_rows":"4242","exception":""}`, 4242, ""},
		{"failed mid-stream", `{"kind":4,"result_rows":"0","exception":"Code: 241. DB::Exception: Memory limit exceeded"}`, 0,
			"logged query tracevault-%s as ExceptionWhileProcessing: Code: 241. DB::Exception: Memory limit exceeded"},
		{"failed before start", `{"kind":3,"result_rows":"0","exception":"Code: 60. DB::Exception: Table x doesn't exist"}`, 0, "as ExceptionBeforeStart"},
		{"finish and exception", `{"kind":2,"result_rows":"10","exception":""}` + "\n" + `{"kind":4,"result_rows":"0","exception":"Code: 394. Query was cancelled"}`, 0, "Query was cancelled"},
		{"no record", "", 0, "no record of query tracevault-%s in system.query_log"},
		{"rows not a count", `{"kind":2,"result_rows":"-1","exception":""}`, 0, `with result_rows "-1", not a count`},
		{"binary exception", `{"kind":4,"result_rows":"0","exception":"\u0000\u0001data"}`, 0, "(an exception that is not text)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var exportID string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				sql := string(body)
				switch {
				case strings.HasPrefix(sql, "SELECT * FROM"):
					if r.URL.Query().Get("log_queries") != "1" {
						t.Errorf("export without log_queries=1: %s", r.URL.RawQuery)
					}
					exportID = r.URL.Query().Get("query_id")
					io.WriteString(w, data)
				case sql == "SYSTEM FLUSH LOGS":
				case strings.Contains(sql, "FROM system.query_log WHERE query_id = '"+exportID+"'") && exportID != "":
					io.WriteString(w, tt.log)
				default:
					http.Error(w, "unexpected query "+sql, http.StatusBadRequest)
				}
			}))
			defer srv.Close()
			h := &HTTP{Addr: strings.TrimPrefix(srv.URL, "http://")}
			ls, err := h.QueryLogged(context.Background(), "SELECT * FROM db.t WHERE _partition_id = '1' FORMAT Native")
			if err != nil {
				t.Fatal(err)
			}
			defer ls.Close()
			got, err := io.ReadAll(ls)
			want := strings.ReplaceAll(tt.wantErr, "tracevault-%s", ls.QueryID())
			switch {
			case tt.wantErr == "" && (err != nil || string(got) != data || ls.Rows() != tt.rows):
				t.Errorf("%q, %d rows, %v; want the data, %d rows", got, ls.Rows(), err, tt.rows)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), want)):
				t.Errorf("err %v, want %q", err, want)
			case tt.wantErr != "" && ls.Rows() != 0:
				t.Errorf("a failed export reports %d rows", ls.Rows())
			}
			if !strings.HasPrefix(ls.QueryID(), "tracevault-") || ls.QueryID() != exportID {
				t.Errorf("export ran as %q, the stream checked %q", exportID, ls.QueryID())
			}
		})
	}
}

func TestWellFormedUUID(t *testing.T) {
	for s, want := range map[string]bool{
		"3f1c2a9e-5b7d-4c1e-9a2b-0d4e6f8a1b2c":                        true,
		"3F1C2A9E-5B7D-4C1E-9A2B-0D4E6F8A1B2C":                        false, // the server spells lower case
		"3f1c2a9e-5b7d-4c1e-9a2b-0d4e6f8a1b2":                         false,
		"3f1c2a9e5b7d4c1e9a2b0d4e6f8a1b2c":                            false,
		"3f1c2a9e-5b7d-4c1e-9a2b-0d4e6f8a1b2c' ENGINE = Memory; DROP": false,
		"":                                       false,
		"3f1c2a9e-5b7d-4c1e-9a2b-0d4e6f8a1b2c\n": false,
	} {
		if WellFormedUUID(s) != want {
			t.Errorf("WellFormedUUID(%q) = %v, want %v", s, !want, want)
		}
	}
}
