// Package postgres backs up a PostgreSQL database as one consistent snapshot and restores it:
// a coordinator transaction exports its snapshot, workers import it and stream COPY of every
// table into the repository, and pg_dump writes the pre-data and post-data DDL from the same
// snapshot. Restores replay pre-data, load the tables in parallel, then build post-data.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// connect opens one connection and turns the usual failures into a cause and a fix.
func connect(ctx context.Context, dsn string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		// pgx can echo the DSN, password included, so its message is not repeated.
		return nil, errors.New("parse [postgres] dsn: not a valid libpq URL or keyword/value string; write postgres://user:password@host:5432/dbname")
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 15 * time.Second
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, explain(fmt.Sprintf("connect to PostgreSQL %s:%d as %s, database %s", cfg.Host, cfg.Port, cfg.User, cfg.Database), err)
	}
	return conn, nil
}

// explain wraps err (nil stays nil) with what was being done and, for the failures an operator meets, the fix.
func explain(doing string, err error) error {
	if err == nil {
		return nil
	}
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		switch pg.Code {
		case "28P01", "28000":
			return fmt.Errorf("%s: authentication failed (%s): %w; fix the user or password in [postgres] dsn (or PGPASSWORD, ~/.pgpass)", doing, pg.Code, err)
		case "3D000":
			return fmt.Errorf("%s: the database does not exist: %w; fix the database name in [postgres] dsn", doing, err)
		case "57P01", "57P02", "57P03":
			return fmt.Errorf("%s: the server shut down or restarted (%s): %w; the exported snapshot died with it, so take the backup again once the server is up", doing, pg.Code, err)
		case "55P03":
			return fmt.Errorf("%s: %w; %s", doing, err, givingWay)
		case "42501":
			return fmt.Errorf("%s: permission denied: %w; back up as the database owner or a superuser (or a role with pg_read_all_data)", doing, err)
		}
		return fmt.Errorf("%s: %w", doing, err)
	}
	var netErr net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("%s: connection refused: %w; check host and port in [postgres] dsn and that the server is running", doing, err)
	case errors.As(err, &netErr) && netErr.Timeout():
		return fmt.Errorf("%s: timed out: %w; check that the host in [postgres] dsn is reachable (firewall, DNS)", doing, err)
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), strings.Contains(err.Error(), "unexpected EOF"), strings.Contains(err.Error(), "conn closed"):
		return fmt.Errorf("%s: the connection was lost (server restart or network failure): %w; take the backup again once the server is up", doing, err)
	}
	return fmt.Errorf("%s: %w", doing, err)
}

// givingWay explains a lock timeout: a backup must not hold up a migration indefinitely.
const givingWay = "a schema change (ALTER, DROP, TRUNCATE...) is waiting for a table this backup holds, so the backup gave way instead of blocking it: take the backup again once the change is done"

// withDatabase returns dsn pointing at another database of the same server.
func withDatabase(dsn, db string) (string, error) {
	if u, err := url.Parse(dsn); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		u.Path = "/" + db
		return u.String(), nil
	}
	if _, err := pgconn.ParseConfig(dsn); err != nil {
		return "", errors.New("parse [postgres] dsn: not a valid libpq URL or keyword/value string")
	}
	kv := regexp.MustCompile(`(^|\s)dbname\s*=\s*('(?:[^'\\]|\\.)*'|\S+)`)
	quoted := "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(db) + "'"
	if kv.MatchString(dsn) {
		return kv.ReplaceAllLiteralString(dsn, " dbname="+quoted), nil
	}
	return dsn + " dbname=" + quoted, nil
}

var kvPassword = regexp.MustCompile(`(^|\s)password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)`)

// splitPassword removes the password from dsn so that a child process gets it through
// PGPASSWORD instead of its command line, where any local user could read it. A URL may
// carry it as user:password@ or as ?password= (libpq takes the query parameter over the
// user info, and so does this); both are removed.
func splitPassword(dsn string) (clean, password string) {
	if u, err := url.Parse(dsn); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		if u.User != nil {
			password, _ = u.User.Password()
			u.User = url.User(u.User.Username())
		}
		// libpq splits the query at '&' and only percent-decodes (a '+' stays a '+'), so the
		// query is taken apart by hand rather than with url.Values, which would change it.
		var keep []string
		for _, kv := range strings.Split(u.RawQuery, "&") {
			k, v, _ := strings.Cut(kv, "=")
			if k, err := url.PathUnescape(k); err == nil && k == "password" {
				if v, err := url.PathUnescape(v); err == nil {
					password = v
				}
				continue
			}
			if kv != "" {
				keep = append(keep, kv)
			}
		}
		u.RawQuery = strings.Join(keep, "&")
		return u.String(), password
	}
	all := kvPassword.FindAllStringSubmatch(dsn, -1)
	if all == nil {
		return dsn, ""
	}
	password = all[len(all)-1][2] // libpq takes the last of repeated keywords
	if strings.HasPrefix(password, "'") {
		password = strings.NewReplacer(`\'`, `'`, `\\`, `\`).Replace(password[1 : len(password)-1])
	}
	return strings.TrimSpace(kvPassword.ReplaceAllString(dsn, "")), password
}

// scrub removes a password from text a child process or a driver wrote, so that an error
// carrying it (say, a client that echoes its connection string) cannot reach a log line, the
// run history or the status page.
func scrub(text, password string) string {
	if password == "" {
		return text
	}
	for _, form := range []string{password, url.QueryEscape(password), url.PathEscape(password)} {
		text = strings.ReplaceAll(text, form, "xxxxx")
	}
	return text
}

// Ident quotes a PostgreSQL identifier.
func Ident(parts ...string) string { return pgx.Identifier(parts).Sanitize() }

// literal quotes a string constant for statements that cannot take parameters.
func literal(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
