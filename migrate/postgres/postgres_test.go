package postgres

import "testing"

func TestWithDatabase(t *testing.T) {
	tests := []struct{ dsn, db, want string }{
		{"postgres://u:p@h:5432/langfuse?sslmode=disable", "other", "postgres://u:p@h:5432/other?sslmode=disable"},
		{"postgresql://h/langfuse", "", "postgresql://h/langfuse"},
		{"host=h user=u dbname=langfuse", "o'ther", `host=h user=u dbname=langfuse dbname='o\'ther'`},
	}
	for _, tt := range tests {
		if got := WithDatabase(tt.dsn, tt.db); got != tt.want {
			t.Errorf("WithDatabase(%q, %q) = %q, want %q", tt.dsn, tt.db, got, tt.want)
		}
	}
}
