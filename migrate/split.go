package migrate

import "strings"

// Statement is one statement of a migration file and where it starts in the file, so an error
// a server reports by position can be traced back to the statement.
type Statement struct {
	SQL    string `json:"sql"`
	Offset int    `json:"offset"` // byte offset of SQL in the file
}

// Dialect is how a target's server reads strings and comments; statements are cut where the
// server itself would see a ';'.
type Dialect int

const (
	// ClickHouse: a backslash escapes in '…', "…" and `…`; block comments do not nest
	// (18.16 ends "/* /* */" at the first "*/").
	ClickHouse Dialect = iota
	// PostgreSQL: '…' is a standard-conforming string (a backslash is an ordinary character)
	// unless written E'…'; "…" doubles its quote; block comments nest; $tag$…$tag$ quotes,
	// and a '$' inside an identifier (a$b) opens nothing.
	PostgreSQL
)

func (d Dialect) String() string {
	if d == PostgreSQL {
		return "postgresql"
	}
	return "clickhouse"
}

// Split cuts a file into statements at each ';' that is outside a string, a quoted identifier,
// a comment or a dollar-quoted body, as d's server reads them. Statements that hold only
// whitespace and comments are dropped: servers reject an empty query.
func Split(sql string, d Dialect) []Statement {
	var out []Statement
	start := 0
	emit := func(end int) {
		s := sql[start:end]
		lead := strings.TrimLeft(s, space)
		trimmed := strings.TrimRight(lead, space)
		if trimmed != "" && !d.onlyComments(trimmed) {
			out = append(out, Statement{SQL: trimmed, Offset: start + len(s) - len(lead)})
		}
	}
	for i := 0; i < len(sql); {
		if c := sql[i]; c == ';' {
			emit(i)
			i++
			start = i
			continue
		}
		i = d.skip(sql, i)
	}
	emit(len(sql))
	return out
}

// space is what both servers skip between tokens; other Unicode spaces (U+0085, U+00A0) are
// part of a token to them, so they are not trimmed from a statement either.
const space = " \t\n\r\f\v"

// skip returns the index after the token that starts at i: a whole string, quoted identifier,
// comment or dollar-quoted body, else one byte.
func (d Dialect) skip(s string, i int) int {
	c := s[i]
	switch {
	case c == '\'':
		return skipQuoted(s, i, c, d == ClickHouse || escapeString(s, i))
	case c == '"':
		return skipQuoted(s, i, c, d == ClickHouse)
	case c == '`' && d == ClickHouse:
		return skipQuoted(s, i, c, true)
	case c == '-' && strings.HasPrefix(s[i:], "--"):
		return skipTo(s, i, "\n")
	case c == '/' && strings.HasPrefix(s[i:], "/*"):
		if d == PostgreSQL {
			return skipNested(s, i)
		}
		return skipTo(s, i+2, "*/")
	case c == '$' && (i == 0 || !isIdent(s[i-1])):
		return skipDollar(s, i)
	}
	return i + 1
}

// escapeString reports whether the PostgreSQL string whose quote is at i is an E'…' string,
// the one kind in which a backslash escapes: an E right before the quote that does not end a
// longer word (namE'x' is not one).
func escapeString(s string, i int) bool {
	return i > 0 && (s[i-1] == 'E' || s[i-1] == 'e') && (i == 1 || !isIdent(s[i-2]))
}

// skipQuoted returns the index after the closing quote. A doubled quote stays inside;
// with backslash, so does a backslash-escaped character.
func skipQuoted(s string, i int, q byte, backslash bool) int {
	for j := i + 1; j < len(s); j++ {
		switch s[j] {
		case '\\':
			if backslash {
				j++
			}
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

// skipNested returns the index after a block comment in which "/*" opens a nested one, as
// PostgreSQL (and the SQL standard) read them.
func skipNested(s string, i int) int {
	depth := 0
	for j := i; j+1 < len(s); j++ {
		switch {
		case s[j] == '/' && s[j+1] == '*':
			depth++
			j++
		case s[j] == '*' && s[j+1] == '/':
			depth--
			j++
			if depth == 0 {
				return j + 1
			}
		}
	}
	return len(s)
}

// skipDollar skips a dollar-quoted body ($$...$$ or $tag$...$tag$); a '$' that does not
// open one ($1 parameters) is passed over.
func skipDollar(s string, i int) int {
	j := i + 1
	for j < len(s) && isIdent(s[j]) && s[j] != '$' {
		j++
	}
	if j >= len(s) || s[j] != '$' || (j > i+1 && s[i+1] >= '0' && s[i+1] <= '9') {
		return i + 1
	}
	tag := s[i : j+1]
	return skipTo(s, j+1, tag)
}

// isIdent reports whether c may continue an identifier: letters, digits, '_', '$' and the
// bytes of non-ASCII characters, which PostgreSQL takes as letters.
func isIdent(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '$' || c >= 0x80
}

// onlyComments reports whether s, already trimmed, holds nothing but comments.
func (d Dialect) onlyComments(s string) bool {
	for s != "" {
		if !strings.HasPrefix(s, "--") && !strings.HasPrefix(s, "/*") {
			return false
		}
		s = strings.Trim(s[d.skip(s, 0):], space)
	}
	return true
}
