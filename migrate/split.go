package migrate

import "strings"

// Statement is one statement of a migration file and where it starts in the file, so an error
// a server reports by position can be traced back to the statement.
type Statement struct {
	SQL    string `json:"sql"`
	Offset int    `json:"offset"` // byte offset of SQL in the file
}

// Split cuts a file into statements at each ';' that is outside a string, a quoted identifier,
// a comment or a PostgreSQL dollar-quoted body. Statements that hold only whitespace and
// comments are dropped: servers reject an empty query.
func Split(sql string) []Statement {
	var out []Statement
	start := 0
	emit := func(end int) {
		s := sql[start:end]
		trimmed := strings.TrimSpace(s)
		if trimmed != "" && !onlyComments(trimmed) {
			out = append(out, Statement{SQL: trimmed, Offset: start + strings.Index(s, trimmed)})
		}
	}
	for i := 0; i < len(sql); {
		switch c := sql[i]; {
		case c == '\'' || c == '"' || c == '`':
			i = skipQuoted(sql, i, c)
		case c == '-' && strings.HasPrefix(sql[i:], "--"):
			i = skipTo(sql, i, "\n")
		case c == '/' && strings.HasPrefix(sql[i:], "/*"):
			i = skipTo(sql, i+2, "*/")
		case c == '$':
			i = skipDollar(sql, i)
		case c == ';':
			emit(i)
			i++
			start = i
		default:
			i++
		}
	}
	emit(len(sql))
	return out
}

// skipQuoted returns the index after the closing quote. Both backslash escapes (ClickHouse,
// MySQL-style) and doubled quotes (standard SQL) stay inside the string.
func skipQuoted(s string, i int, q byte) int {
	for j := i + 1; j < len(s); j++ {
		switch s[j] {
		case '\\':
			j++
		case q:
			if j+1 < len(s) && s[j+1] == q {
				j++
				continue
			}
			return j + 1
		}
	}
	return len(s)
}

// skipTo returns the index after the next end, or the end of s.
func skipTo(s string, i int, end string) int {
	k := strings.Index(s[i:], end)
	if k < 0 {
		return len(s)
	}
	return i + k + len(end)
}

// skipDollar skips a PostgreSQL dollar-quoted body ($$...$$ or $tag$...$tag$); a '$' that
// does not open one ($1 parameters) is passed over.
func skipDollar(s string, i int) int {
	j := i + 1
	for j < len(s) && (s[j] == '_' || isAlnum(s[j])) {
		j++
	}
	if j >= len(s) || s[j] != '$' || (j > i+1 && s[i+1] >= '0' && s[i+1] <= '9') {
		return i + 1
	}
	tag := s[i : j+1]
	return skipTo(s, j+1, tag)
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// onlyComments reports whether s, already trimmed, holds nothing but comments.
func onlyComments(s string) bool {
	for s != "" {
		switch {
		case strings.HasPrefix(s, "--"):
			s = s[skipTo(s, 0, "\n"):]
		case strings.HasPrefix(s, "/*"):
			s = s[skipTo(s, 2, "*/"):]
		default:
			return false
		}
		s = strings.TrimSpace(s)
	}
	return true
}
