// Package pgdsn takes PostgreSQL connection strings apart as libpq does, to point one at
// another database or to take its password out (a child process gets it through PGPASSWORD,
// not its command line). Every rewrite is checked with pgconn's parser, the model of libpq's.
package pgdsn

import (
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// WithDatabase returns dsn pointing at database db of the same server, as the same user with
// the same settings; an empty db leaves dsn as it is. The result is checked with the client
// library's own parser, and a DSN that cannot be rewritten safely is an error.
func WithDatabase(dsn, db string) (string, error) {
	if db == "" {
		if _, err := pgconn.ParseConfig(dsn); err != nil {
			return "", ErrInvalid
		}
		return dsn, nil
	}
	if strings.ContainsRune(db, 0) {
		// The name may come from a manifest; PostgreSQL names cannot hold NUL.
		return "", fmt.Errorf("database name %q holds a NUL byte: not a PostgreSQL name", db)
	}
	want, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return "", ErrInvalid
	}
	var out string
	if u, err := parseURI(dsn); err == nil {
		u.drop("dbname", "database")
		u.path = "/" + url.PathEscape(db)
		out = u.String()
	} else if pairs, err := parseKV(dsn); err == nil && !isURL(dsn) {
		out = formatKV(append(without(pairs, "dbname"), kvPair{"dbname", db}))
	}
	if got, err := pgconn.ParseConfig(out); out == "" || err != nil || got.Database != db || !sameTarget(want, got, false) {
		return "", fmt.Errorf("point [postgres] dsn at database %q: the DSN is written in a form tracevault cannot rewrite; write it as postgres://user:password@host:5432/dbname (percent-encoded) or host=... user=... dbname=...", db)
	}
	return out, nil
}

// ErrInvalid is a DSN the client library cannot parse. Its own message is not repeated: it
// can quote the DSN, and redacts the password from it only on a best-effort basis.
var ErrInvalid = errors.New("parse [postgres] dsn: not a valid libpq URL or keyword/value string; write postgres://user:password@host:5432/dbname")

// SplitPassword removes the password from dsn so that a child process gets it through
// PGPASSWORD instead of its command line, where any local user could read it. A URL may
// carry it as user:password@ or as ?password= (libpq takes the query parameter over the
// user info); a keyword/value string as password=. The password returned is the one the
// client library reads from dsn; a DSN this cannot take apart the same way is refused rather
// than passed on whole.
func SplitPassword(dsn string) (clean, password string, err error) {
	want, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return "", "", ErrInvalid
	}
	clean, password, ok := dsn, "", false
	if u, err := parseURI(dsn); err == nil {
		if user, pw, ok := strings.Cut(u.userinfo, ":"); ok {
			password, _ = url.PathUnescape(pw)
			u.userinfo = user
		}
		for _, p := range u.query {
			if p.key == "password" {
				password = p.value // the query parameter wins over the user info
			}
		}
		u.drop("password")
		clean, ok = u.String(), true
	} else if pairs, err := parseKV(dsn); err == nil && !isURL(dsn) {
		for _, p := range pairs {
			if p.key == "password" {
				password = p.value // libpq takes the last of repeated keywords
			}
		}
		clean, ok = formatKV(without(pairs, "password")), true
	}
	if password == "" && want.Password == "" {
		return dsn, "", nil // nothing to hide (the password, if any, comes from PGPASSWORD or ~/.pgpass)
	}
	got, err := pgconn.ParseConfig(clean)
	if !ok || password != want.Password || err != nil || !sameTarget(want, got, true) {
		return "", "", errors.New("[postgres] dsn holds a password in a form tracevault cannot take out of pg_dump's command line: write it as postgres://user:password@host:5432/dbname (percent-encoded) or host=... password=..., or leave it out and set PGPASSWORD")
	}
	return clean, password, nil
}

// sameTarget reports whether two configurations reach the same server and database as the
// same user with the same settings and the same use of TLS; withDB false leaves the database
// out.
func sameTarget(a, b *pgconn.Config, withDB bool) bool {
	if a.Host != b.Host || a.Port != b.Port || a.User != b.User || (withDB && a.Database != b.Database) ||
		(a.TLSConfig == nil) != (b.TLSConfig == nil) || !maps.Equal(a.RuntimeParams, b.RuntimeParams) ||
		len(a.Fallbacks) != len(b.Fallbacks) {
		return false
	}
	for i, f := range a.Fallbacks {
		g := b.Fallbacks[i]
		if f.Host != g.Host || f.Port != g.Port || (f.TLSConfig == nil) != (g.TLSConfig == nil) {
			return false
		}
	}
	return true
}

// isURL tells a connection URI from a keyword/value string as libpq does: by its prefix
// alone ("postgres:x=1" is a keyword/value string).
func isURL(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// uri is a connection URI cut where libpq cuts it; net/url reads some that libpq takes
// differently, or not at all (several hosts with an IPv6 address and ports).
type uri struct {
	prefix   string   // "postgres://" or "postgresql://"
	userinfo string   // user[:password], still percent-encoded; "" without an '@'
	hosts    string   // host[:port][,host[:port]]...
	path     string   // "/dbname", still encoded, or ""
	query    []kvPair // decoded parameters, in order
	rawQuery []string // the same parameters as written, to write them back unchanged
}

// drop removes the query parameters named keys.
func (u *uri) drop(keys ...string) {
	var q []kvPair
	var raw []string
	for i, p := range u.query {
		if !slices.Contains(keys, p.key) {
			q, raw = append(q, p), append(raw, u.rawQuery[i])
		}
	}
	u.query, u.rawQuery = q, raw
}

func parseURI(dsn string) (*uri, error) {
	if !isURL(dsn) {
		return nil, errors.New("not a postgres:// URI")
	}
	u := &uri{prefix: dsn[:strings.Index(dsn, "//")+2]}
	p := dsn[len(u.prefix):]
	if i := strings.IndexAny(p, "@/"); i >= 0 && p[i] == '@' {
		u.userinfo, p = p[:i], p[i+1:]
	}
	j := 0
	for {
		if j < len(p) && p[j] == '[' {
			k := strings.IndexByte(p[j:], ']')
			if k < 0 {
				return nil, errors.New("unterminated IPv6 address")
			}
			j += k + 1
		} else if k := strings.IndexAny(p[j:], ":/?,"); k < 0 {
			j = len(p)
		} else {
			j += k
		}
		if j < len(p) && p[j] == ':' {
			if k := strings.IndexAny(p[j+1:], "/?,"); k < 0 {
				j = len(p)
			} else {
				j += 1 + k
			}
		}
		if j < len(p) && p[j] == ',' {
			j++
			continue
		}
		break
	}
	u.hosts, p = p[:j], p[j:]
	if strings.HasPrefix(p, "/") {
		end := strings.IndexByte(p, '?')
		if end < 0 {
			end = len(p)
		}
		u.path, p = p[:end], p[end:]
	}
	if p == "" {
		return u, nil
	}
	if p[0] != '?' {
		return nil, fmt.Errorf("unexpected %q after the hosts", p[0])
	}
	if p == "?" {
		return u, nil
	}
	for _, kv := range strings.Split(p[1:], "&") {
		k, v, ok := strings.Cut(kv, "=")
		dk, err1 := url.PathUnescape(k)
		dv, err2 := url.PathUnescape(v)
		if !ok || err1 != nil || err2 != nil {
			return nil, fmt.Errorf("bad query parameter %q", k)
		}
		u.query, u.rawQuery = append(u.query, kvPair{dk, dv}), append(u.rawQuery, kv)
	}
	return u, nil
}

// String writes the URI back.
func (u *uri) String() string {
	var b strings.Builder
	b.WriteString(u.prefix)
	if u.userinfo != "" {
		b.WriteString(u.userinfo + "@")
	}
	b.WriteString(u.hosts + u.path)
	if len(u.rawQuery) > 0 {
		b.WriteString("?" + strings.Join(u.rawQuery, "&"))
	}
	return b.String()
}

// kvPair is one keyword = value of a libpq keyword/value connection string.
type kvPair struct{ key, value string }

const kvSpace = " \t\n\r\v\f"

// parseKV reads a keyword/value connection string by libpq's rules (as pgconn does):
// whitespace around '=', values bare or single-quoted, a backslash escaping the next byte.
// Rewriting the string with regular expressions instead would find "dbname=" inside a quoted
// password, or glue a new keyword to an empty value left at the end.
func parseKV(s string) ([]kvPair, error) {
	if strings.IndexByte(s, 0) >= 0 {
		return nil, errors.New("NUL byte in connection string")
	}
	var out []kvPair
	for s = strings.TrimLeft(s, kvSpace); s != ""; s = strings.TrimLeft(s, kvSpace) {
		eq := strings.IndexByte(s, '=')
		if eq < 0 {
			return nil, errors.New("a keyword without '='")
		}
		key := strings.Trim(s[:eq], kvSpace)
		if key == "" || strings.ContainsAny(key, kvSpace) {
			return nil, fmt.Errorf("bad keyword %q", key)
		}
		s = strings.TrimLeft(s[eq+1:], kvSpace)
		var v strings.Builder
		if strings.HasPrefix(s, "'") {
			i := 1
			for ; i < len(s) && s[i] != '\''; i++ {
				if s[i] == '\\' {
					i++
					if i == len(s) {
						break
					}
				}
				v.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, errors.New("unterminated quoted value")
			}
			s = s[i+1:]
		} else {
			i := 0
			for ; i < len(s) && !strings.ContainsRune(kvSpace, rune(s[i])); i++ {
				if s[i] == '\\' {
					i++
					if i == len(s) {
						break // a trailing backslash is dropped
					}
				}
				v.WriteByte(s[i])
			}
			s = s[min(i, len(s)):]
		}
		out = append(out, kvPair{key, v.String()})
	}
	return out, nil
}

// formatKV writes pairs back, quoting the values that need it.
func formatKV(pairs []kvPair) string {
	parts := make([]string, len(pairs))
	for i, p := range pairs {
		v := p.value
		if v == "" || strings.ContainsAny(v, kvSpace+`'\`) {
			v = "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
		}
		parts[i] = p.key + "=" + v
	}
	return strings.Join(parts, " ")
}

func without(pairs []kvPair, keys ...string) []kvPair {
	var out []kvPair
	for _, p := range pairs {
		if !slices.Contains(keys, p.key) {
			out = append(out, p)
		}
	}
	return out
}

// Scrub removes a password from text a child process or a driver wrote, so that an error
// carrying it (say, a client that echoes its connection string) cannot reach a log line, the
// run history or the status page.
func Scrub(text, password string) string {
	if password == "" {
		return text
	}
	q := url.QueryEscape(password)
	for _, form := range []string{password, q, strings.ReplaceAll(q, "+", "%20"), url.PathEscape(password)} {
		text = strings.ReplaceAll(text, form, "xxxxx")
	}
	return text
}
