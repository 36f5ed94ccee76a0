package clickhouse

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// The statements SHOW CREATE TABLE returns are replayed on restore, rewritten for where they go:
// IF NOT EXISTS and ON CLUSTER added, the database renamed for --database-map, the recorded UUID
// added on servers that have them, and the engine made non-replicated for staging tables.

var (
	replicatedArgs  = regexp.MustCompile(`(?s)ENGINE\s*=\s*Replicated(\w*MergeTree)\(\s*'([^']*)'\s*,\s*'([^']*)'\s*(,\s*)?`)
	replicatedEmpty = regexp.MustCompile(`(?s)ENGINE\s*=\s*Replicated(\w*MergeTree)(\(\s*\))?(\s)`)
	uuidForm        = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
)

// WellFormedUUID is a UUID as the server spells it: lower-case hex in 8-4-4-4-12 groups. Every
// UUID read from a manifest passes it before it reaches SQL.
func WellFormedUUID(s string) bool { return uuidForm.MatchString(s) }

// ReplicationPaths are the ZooKeeper paths written in a statement's replicated engines, macros as
// written.
func ReplicationPaths(sql string) []string {
	var out []string
	for _, sm := range replicatedArgs.FindAllStringSubmatch(sql, -1) {
		out = append(out, sm[2])
	}
	return out
}

// Rewrite says how a recorded statement is replayed.
type Rewrite struct {
	Database  string // target database (after --database-map)
	Table     string // target name; empty keeps the recorded one
	Cluster   string // ON CLUSTER name, empty for none
	UUID      string // recorded UUID to keep (modern servers, in-place restores)
	DBMap     map[string]string
	ZKPathMap func(string) string // rewrites the replication path; nil keeps it
	// Staging makes a non-replicated twin with the same structure, partition key and sort key,
	// local to one server: what REPLACE PARTITION needs as a source.
	Staging bool
	// Topology rewrites MergeTree engines for a cluster migration's target (see Topology);
	// nil keeps them. Staging wins over it.
	Topology *Topology
}

// RewriteCreate applies r to a recorded CREATE statement. The statement comes from the
// repository, which anyone able to write to it can change, so it is replayed only if it is one
// CREATE statement (see parseCreate) and r's UUID and replication path cannot leave their quotes.
func RewriteCreate(stmt string, r Rewrite) (string, error) {
	c, err := parseCreate(stmt)
	if err != nil {
		return "", err
	}
	if r.UUID != "" && !WellFormedUUID(r.UUID) {
		return "", fmt.Errorf("UUID %.60q is not a UUID", r.UUID)
	}
	table := c.tableToken
	if r.Table != "" {
		table = QuoteIdent(r.Table)
	}
	head := fmt.Sprintf("CREATE %s IF NOT EXISTS %s.%s", c.verb, QuoteIdent(r.Database), table)
	if r.UUID != "" && !r.Staging {
		head += fmt.Sprintf(" UUID '%s'", r.UUID)
	}
	if r.Cluster != "" && !r.Staging {
		head += " ON CLUSTER " + QuoteIdent(r.Cluster)
	}
	body := c.body
	for src, dst := range r.DBMap {
		if src != dst {
			body = regexp.MustCompile("(^|[\\s(,=])`?"+regexp.QuoteMeta(src)+"`?\\.").ReplaceAllString(body, "${1}"+QuoteIdent(dst)+".")
		}
	}
	switch {
	case r.Topology != nil && !r.Staging:
		name := c.table
		if r.Table != "" {
			name = r.Table
		}
		if body, err = r.Topology.rewriteEngine(body, r.Database, name); err != nil {
			return "", err
		}
	case r.Staging:
		body = replicatedArgs.ReplaceAllString(body, "ENGINE = ${1}(")
		body = replicatedEmpty.ReplaceAllString(body, "ENGINE = ${1}()${3}")
		body = strings.ReplaceAll(body, "ENGINE = MergeTree()", "ENGINE = MergeTree")
	case r.ZKPathMap != nil:
		var bad string
		body = replicatedArgs.ReplaceAllStringFunc(body, func(s string) string {
			sm := replicatedArgs.FindStringSubmatch(s)
			p := r.ZKPathMap(sm[2])
			if strings.ContainsAny(p, `'\`) {
				bad = p
			}
			return fmt.Sprintf("ENGINE = Replicated%s('%s', '%s'%s", sm[1], p, sm[3], sm[4])
		})
		if bad != "" {
			return "", fmt.Errorf("replication path %.80q would leave its quotes", bad)
		}
	}
	return head + body, nil
}

// createStmt is a CREATE statement split where RewriteCreate rewrites it.
type createStmt struct {
	verb       string // TABLE, VIEW, MATERIALIZED VIEW or DICTIONARY
	database   string // unquoted
	table      string // unquoted
	tableToken string // the table name as written, kept when the table is not renamed
	uuid       string // of the UUID '...' clause; empty without one
	body       string // the rest: columns, engine, or a view's query
}

// parseCreate reads the head of a CREATE statement as SHOW CREATE writes it: CREATE TABLE,
// VIEW, MATERIALIZED VIEW or DICTIONARY, a database-qualified name, and an optional UUID
// clause holding a well-formed UUID. The whole text must be that one statement (see
// singleStatement): ATTACH, INSERT, or a second statement after a semicolon is refused.
func parseCreate(stmt string) (createStmt, error) {
	var c createStmt
	text, err := singleStatement(stmt)
	if err != nil {
		return c, fmt.Errorf("not a CREATE statement ClickHouse wrote (%w): %.60q", err, stmt)
	}
	l := &lexer{s: text}
	bad := func(what string) (createStmt, error) {
		return c, fmt.Errorf("not a CREATE statement ClickHouse wrote (%s at byte %d): %.60q", what, l.pos, stmt)
	}
	if !l.keyword("CREATE") {
		return bad("it does not start with CREATE")
	}
	switch {
	case l.keyword("TABLE"):
		c.verb = "TABLE"
	case l.keyword("VIEW"):
		c.verb = "VIEW"
	case l.keyword("MATERIALIZED"):
		if !l.keyword("VIEW") {
			return bad("MATERIALIZED without VIEW")
		}
		c.verb = "MATERIALIZED VIEW"
	case l.keyword("DICTIONARY"):
		c.verb = "DICTIONARY"
	default:
		return bad("it creates no table, view or dictionary")
	}
	if l.keyword("IF") && !(l.keyword("NOT") && l.keyword("EXISTS")) {
		return bad("IF without NOT EXISTS")
	}
	if c.database, _, err = l.ident(); err != nil {
		return bad("database name: " + err.Error())
	}
	if !l.punct('.') {
		return bad("the name is not database-qualified")
	}
	if c.table, c.tableToken, err = l.ident(); err != nil {
		return bad("table name: " + err.Error())
	}
	if l.keyword("UUID") {
		if c.uuid, err = l.uuidLiteral(); err != nil {
			return bad(err.Error())
		}
	}
	c.body = text[l.pos:]
	// SHOW CREATE writes a table's columns, never the query it was made from, and never
	// POPULATE: either would run a query at restore (reading a url(), file() or remote()).
	words := topLevelWords(c.body)
	switch {
	case (c.verb == "TABLE" || c.verb == "DICTIONARY") && words["AS"]:
		return bad("a table made from a query or another table (AS)")
	case words["POPULATE"]:
		return bad("POPULATE runs the view's query")
	}
	return c, nil
}

// topLevelWords is the set of words, upper-cased, outside quotes and parentheses.
func topLevelWords(body string) map[string]bool {
	words := map[string]bool{}
	depth := 0
	for i := 0; i < len(body); i++ {
		switch c := body[i]; {
		case c == '\'' || c == '`' || c == '"':
			if j := closingQuote(body, i); j > 0 {
				i = j
			}
		case c == '(':
			depth++
		case c == ')':
			depth--
		case isWordByte(c, true) && (i == 0 || !isWordByte(body[i-1], false)):
			j := i
			for j < len(body) && isWordByte(body[j], false) {
				j++
			}
			if depth == 0 {
				words[strings.ToUpper(body[i:j])] = true
			}
			i = j - 1
		}
	}
	return words
}

// singleStatement returns stmt without a trailing semicolon, or why it may be more than one
// statement. Quotes are followed as ClickHouse reads them (backslash escapes, doubled quote
// characters); comments, heredocs and control characters, which SHOW CREATE never writes and
// which lexers disagree on, are refused outright rather than interpreted.
func singleStatement(stmt string) (string, error) {
	end := -1
	for i := 0; i < len(stmt); i++ {
		c := stmt[i]
		if end >= 0 {
			if !isSpace(c) {
				return "", fmt.Errorf("text follows the semicolon at byte %d", end)
			}
			continue
		}
		switch {
		case c == '\'' || c == '`' || c == '"':
			j := closingQuote(stmt, i)
			if j < 0 {
				return "", fmt.Errorf("the quote at byte %d is never closed", i)
			}
			i = j
		case c == ';':
			end = i
		case c == '-' && strings.HasPrefix(stmt[i:], "--"), c == '/' && strings.HasPrefix(stmt[i:], "/*"), c == '#':
			return "", fmt.Errorf("a comment at byte %d", i)
		case c == '$':
			return "", fmt.Errorf("a heredoc or $ at byte %d", i)
		case c < 0x20 && !isSpace(c), c == 0x7f:
			return "", fmt.Errorf("control character %#x at byte %d", c, i)
		}
	}
	if end >= 0 {
		return stmt[:end], nil
	}
	return stmt, nil
}

// closingQuote is the index of the quote closing the one at i, or -1.
func closingQuote(s string, i int) int {
	q := s[i]
	for j := i + 1; j < len(s); j++ {
		switch s[j] {
		case '\\':
			j++
		case q:
			if j+1 < len(s) && s[j+1] == q {
				j++
				continue
			}
			return j
		}
	}
	return -1
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

func isWordByte(c byte, first bool) bool {
	return c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || !first && '0' <= c && c <= '9'
}

// lexer reads the head of a statement singleStatement has accepted.
type lexer struct {
	s   string
	pos int
}

func (l *lexer) skipSpace() {
	for l.pos < len(l.s) && isSpace(l.s[l.pos]) {
		l.pos++
	}
}

// keyword consumes the word w, in any case, if it comes next.
func (l *lexer) keyword(w string) bool {
	start := l.pos
	l.skipSpace()
	end := l.pos + len(w)
	if end > len(l.s) || !strings.EqualFold(l.s[l.pos:end], w) || end < len(l.s) && isWordByte(l.s[end], false) {
		l.pos = start // what follows the head keeps its spacing
		return false
	}
	l.pos = end
	return true
}

func (l *lexer) punct(c byte) bool {
	l.skipSpace()
	if l.pos < len(l.s) && l.s[l.pos] == c {
		l.pos++
		return true
	}
	return false
}

// identEscapes are the backslash escapes ClickHouse writes in quoted names; any other escape
// (\x41, say) would make the server read a name other than the one compared here.
var identEscapes = map[byte]byte{'b': '\b', 'f': '\f', 'n': '\n', 'r': '\r', 't': '\t', '0': 0, 'a': '\a', 'v': '\v', '\\': '\\', '\'': '\'', '"': '"', '`': '`'}

// ident reads a bare or quoted name: its value and its text as written.
func (l *lexer) ident() (name, token string, err error) {
	l.skipSpace()
	start := l.pos
	if l.pos < len(l.s) && (l.s[l.pos] == '`' || l.s[l.pos] == '"') {
		end := closingQuote(l.s, l.pos)
		if end < 0 {
			return "", "", fmt.Errorf("unclosed quote")
		}
		q := l.s[l.pos]
		var b strings.Builder
		for i := l.pos + 1; i < end; i++ {
			switch c := l.s[i]; {
			case c == '\\':
				i++
				e, ok := identEscapes[l.s[i]]
				if !ok {
					return "", "", fmt.Errorf("escape \\%c", l.s[i])
				}
				b.WriteByte(e)
			case c == q:
				i++ // a doubled quote
				b.WriteByte(q)
			default:
				b.WriteByte(c)
			}
		}
		l.pos = end + 1
		if b.Len() == 0 {
			return "", "", fmt.Errorf("empty name")
		}
		return b.String(), l.s[start:l.pos], nil
	}
	for l.pos < len(l.s) && isWordByte(l.s[l.pos], l.pos == start) {
		l.pos++
	}
	if l.pos == start {
		return "", "", fmt.Errorf("no name")
	}
	return l.s[start:l.pos], l.s[start:l.pos], nil
}

// uuidLiteral reads the string of a UUID clause, which must hold a UUID and nothing else.
func (l *lexer) uuidLiteral() (string, error) {
	l.skipSpace()
	if l.pos >= len(l.s) || l.s[l.pos] != '\'' {
		return "", fmt.Errorf("UUID not followed by a quoted UUID")
	}
	end := strings.IndexByte(l.s[l.pos+1:], '\'')
	if end < 0 || !WellFormedUUID(l.s[l.pos+1:l.pos+1+end]) {
		return "", fmt.Errorf("UUID clause holds no well-formed UUID")
	}
	u := l.s[l.pos+1 : l.pos+1+end]
	l.pos += end + 2
	return u, nil
}

// CheckCreate reports whether t's recorded statement creates t: the same database and name,
// the kind its engine says, and the recorded UUID if it names one. A manifest is not
// authenticated on a plaintext repository, so restore checks this before it plans to run any
// recorded statement.
func (t Table) CheckCreate() error {
	c, err := parseCreate(t.Create)
	if err != nil {
		return fmt.Errorf("recorded statement of %s: %w", t.FullName(), err)
	}
	if c.database != t.Database || c.table != t.Name {
		return fmt.Errorf("recorded statement of %s creates %s.%s instead", t.FullName(), c.database, c.table)
	}
	if t.UUID != "" && !WellFormedUUID(t.UUID) {
		return fmt.Errorf("recorded UUID of %s, %.60q, is not a UUID", t.FullName(), t.UUID)
	}
	if c.uuid != "" && c.uuid != t.UUID {
		return fmt.Errorf("recorded statement of %s creates UUID %s, the record says %q", t.FullName(), c.uuid, t.UUID)
	}
	want := map[string]string{"View": "VIEW", "MaterializedView": "MATERIALIZED VIEW"}[t.Engine]
	switch {
	case want == "" && t.Engine == "Dictionary":
		if c.verb != "DICTIONARY" && c.verb != "TABLE" {
			return fmt.Errorf("recorded statement of dictionary %s creates a %s", t.FullName(), strings.ToLower(c.verb))
		}
	case want == "":
		if c.verb != "TABLE" {
			return fmt.Errorf("recorded statement of %s table %s creates a %s", t.Engine, t.FullName(), strings.ToLower(c.verb))
		}
	case c.verb != want:
		return fmt.Errorf("recorded statement of %s %s creates a %s", strings.ToLower(want), t.FullName(), strings.ToLower(c.verb))
	}
	return nil
}

// CheckStatements refuses a section whose recorded statements are not each the CREATE of the
// table they are recorded for, naming every one.
func (s *Section) CheckStatements() error {
	var errs []error
	for _, t := range s.Tables {
		if err := t.CheckCreate(); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w; the manifest was damaged or changed by someone who can write to the repository: restore from another snapshot, and check who can write there", errors.Join(errs...))
	}
	return nil
}

// MapZooKeeperPath moves a replication path to a renamed database: the database segment is
// replaced, or a suffix added, so a copy restored next to the original never registers in the
// original's replication group.
func MapZooKeeperPath(path, srcDB, dstDB string) string {
	if srcDB == dstDB {
		return path
	}
	if strings.Contains(path, "/"+srcDB+"/") {
		return strings.Replace(path, "/"+srcDB+"/", "/"+dstDB+"/", 1)
	}
	return path + "_" + dstDB
}
