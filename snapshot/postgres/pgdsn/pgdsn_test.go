package pgdsn

import (
	"strings"
	"testing"
)

func TestSplitPassword(t *testing.T) {
	for _, tc := range []struct{ dsn, clean, password string }{
		{"postgres://u:s3cret@h:5432/db?sslmode=disable", "postgres://u@h:5432/db?sslmode=disable", "s3cret"},
		{"postgresql://u@h/db", "postgresql://u@h/db", ""},
		{"host=h user=u password=s3cret dbname=db", "host=h user=u dbname=db", "s3cret"},
		{`host=h password='it\'s a \\ x' dbname=db`, "host=h dbname=db", `it's a \ x`},
		{"host=h dbname=db", "host=h dbname=db", ""},
		{"postgres://u@h/db?sslmode=disable&password=s%40c+r%26t", "postgres://u@h/db?sslmode=disable", "s@c+r&t"},
		{"postgres://u:old@h/db?password=new&application_name=a%20b", "postgres://u@h/db?application_name=a%20b", "new"},
		{"host=h password=first password='second' dbname=db", "host=h dbname=db", "second"},
		{"host=h password = 'x dbname=y' dbname=db", "host=h dbname=db", "x dbname=y"},
		{"host=h password=", "host=h password=", ""},
		{"postgresql:///langfuse?host=/var/run/postgresql&password=pw", "postgresql:///langfuse?host=/var/run/postgresql", "pw"},
		{"host=/var/run/postgresql user=u password=pw", "host=/var/run/postgresql user=u", "pw"},
		{"postgres://u:p%2Fw@[::1]:5432,h2/db", "postgres://u@[::1]:5432,h2/db", "p/w"},
		{"postgres://:pw@h/db?", "postgres://h/db", "pw"},
	} {
		clean, password, err := SplitPassword(tc.dsn)
		if err != nil || clean != tc.clean || password != tc.password {
			t.Errorf("SplitPassword(%q) = %q, %q; want %q, %q", tc.dsn, clean, password, tc.clean, tc.password)
		}
	}
}

func TestWithDatabase(t *testing.T) {
	for _, tc := range []struct{ dsn, db, want string }{
		{"postgres://u:p@h:5432/langfuse?sslmode=disable", "postgres", "postgres://u:p@h:5432/postgres?sslmode=disable"},
		{"host=h dbname=langfuse user=u", "other db", "host=h user=u dbname='other db'"},
		{"postgresql://h/langfuse", "", "postgresql://h/langfuse"},
		{"host=h user=u dbname=langfuse", "o'ther", `host=h user=u dbname='o\'ther'`},
		{"host=h password='a dbname=b' dbname=c", "d", "host=h password='a dbname=b' dbname=d"},
		{"host=h sslmode=", "d", "host=h sslmode='' dbname=d"},
		{"postgres://u@[::1]:5432,h2:5433/a?dbname=b&sslmode=disable", "c d", "postgres://u@[::1]:5432,h2:5433/c%20d?sslmode=disable"},
		{"host=h user=u", "x", "host=h user=u dbname=x"},
	} {
		got, err := WithDatabase(tc.dsn, tc.db)
		if err != nil || got != tc.want {
			t.Errorf("WithDatabase(%q, %q) = %q, %v; want %q", tc.dsn, tc.db, got, err, tc.want)
		}
	}
}

func TestScrub(t *testing.T) {
	got := Scrub("auth with p@ss w/rd and p%40ss%20w%2Frd failed", "p@ss w/rd")
	if strings.Contains(got, "ss") {
		t.Errorf("Scrub left a form of the password: %q", got)
	}
}
