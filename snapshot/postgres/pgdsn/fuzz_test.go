package pgdsn

import (
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// FuzzDSN: for any DSN libpq's rules accept (pgconn.ParseConfig is the model), splitPassword
// hands the child exactly the password the DSN holds and a DSN that holds none but otherwise
// connects to the same place, and withDatabase changes the database and nothing else.
func FuzzDSN(f *testing.F) {
	for _, dsn := range []string{
		"postgres://u:s3cret@h:5432/db?sslmode=disable",
		"postgresql://u@h/db?password=p%40ss&application_name=a%20b",
		"postgres://u:old@h1:5432,h2:5433/db?password=new",
		"host=h user=u password=s3cret dbname=db",
		`host=h password='it\'s a \\ x' dbname='my db'`,
		"host=h password=a password=b",
		"postgres://%75ser:p%3Aw@[::1]:5432/d%2Fb",
	} {
		f.Add(dsn, "other db")
	}
	f.Fuzz(func(t *testing.T, dsn, db string) {
		t.Setenv("PGPASSWORD", "")
		t.Setenv("PGPASSFILE", "/nonexistent")
		t.Setenv("PGSERVICEFILE", "/nonexistent")
		// A password of any bytes, percent-encoded into a URL as net/url writes one, is
		// always taken out, never refused.
		if !strings.ContainsRune(db, 0) && db != "" {
			u := url.URL{Scheme: "postgres", User: url.UserPassword("u", db), Host: "h:5432", Path: "/d"}
			clean, password, err := SplitPassword(u.String())
			if err != nil || password != db || clean != "postgres://u@h:5432/d" {
				t.Fatalf("SplitPassword(%q) = %q, %q, %v; want the password %q taken out", u.String(), clean, password, err, db)
			}
		}
		want, err := pgconn.ParseConfig(dsn)
		if err != nil {
			return
		}
		clean, password, err := SplitPassword(dsn)
		if err == nil {
			got, err := pgconn.ParseConfig(clean)
			if err != nil {
				t.Fatalf("SplitPassword(%q) = %q, which does not parse: %v", dsn, clean, err)
			}
			if password != want.Password || got.Password != "" {
				t.Fatalf("SplitPassword(%q) = %q, %q: the DSN's password is %q and the clean DSN still has %q", dsn, clean, password, want.Password, got.Password)
			}
			if !sameTarget(want, got, true) {
				t.Fatalf("SplitPassword(%q) = %q, which connects elsewhere: %+v vs %+v", dsn, clean, got, want)
			}
		} else if want.Password == "" && !mayHoldPassword(dsn) {
			t.Fatalf("SplitPassword(%q) refused a DSN without a password: %v", dsn, err)
		}

		if db == "" {
			return
		}
		moved, err := WithDatabase(dsn, db)
		if err != nil {
			return // refusing is allowed; pointing elsewhere is not
		}
		got, err := pgconn.ParseConfig(moved)
		if err != nil || got.Database != db || got.Password != want.Password || !sameTarget(want, got, false) {
			t.Fatalf("WithDatabase(%q, %q) = %q, which does not reach database %q of the same server as the same user: %v", dsn, db, moved, db, err)
		}
	})
}

// mayHoldPassword reports text where libpq may read a password that pgconn, the model here,
// does not (postgres://: @ is user "" with password " " to libpq): refusing such a DSN is safe,
// handing it whole to pg_dump would not be.
func mayHoldPassword(dsn string) bool {
	if strings.Contains(dsn, "password") {
		return true
	}
	if i := strings.Index(dsn, "://"); i >= 0 {
		rest := dsn[i+3:]
		if at := strings.LastIndex(rest, "@"); at >= 0 && strings.Contains(rest[:at], ":") {
			return true
		}
	}
	return false
}
