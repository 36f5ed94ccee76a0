package clickhouse

import (
	"fmt"
	"regexp"
	"strings"
)

// The statements SHOW CREATE TABLE returns are replayed on restore, rewritten for where they go:
// IF NOT EXISTS and ON CLUSTER added, the database renamed for --database-map, the recorded UUID
// added on servers that have them, and the engine made non-replicated for staging tables.

var (
	createHead      = regexp.MustCompile("(?is)^\\s*(CREATE|ATTACH)\\s+(TABLE|VIEW|MATERIALIZED\\s+VIEW|DICTIONARY)\\s+(?:IF\\s+NOT\\s+EXISTS\\s+)?([`\\w]+)\\.([`\\w.]+)(\\s+UUID\\s+'[0-9a-f-]+')?")
	replicatedArgs  = regexp.MustCompile(`(?s)ENGINE\s*=\s*Replicated(\w*MergeTree)\(\s*'([^']*)'\s*,\s*'([^']*)'\s*(,\s*)?`)
	replicatedEmpty = regexp.MustCompile(`(?s)ENGINE\s*=\s*Replicated(\w*MergeTree)(\(\s*\))?(\s)`)
)

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
}

// RewriteCreate applies r to a recorded CREATE statement.
func RewriteCreate(stmt string, r Rewrite) (string, error) {
	m := createHead.FindStringSubmatchIndex(stmt)
	if m == nil {
		return "", fmt.Errorf("not a CREATE statement ClickHouse wrote: %.60q", stmt)
	}
	verb := strings.ToUpper(strings.Join(strings.Fields(stmt[m[4]:m[5]]), " "))
	table := stmt[m[8]:m[9]]
	if r.Table != "" {
		table = QuoteIdent(r.Table)
	}
	head := fmt.Sprintf("CREATE %s IF NOT EXISTS %s.%s", verb, QuoteIdent(r.Database), table)
	if r.UUID != "" && !r.Staging {
		head += fmt.Sprintf(" UUID '%s'", r.UUID)
	}
	if r.Cluster != "" && !r.Staging {
		head += " ON CLUSTER " + QuoteIdent(r.Cluster)
	}
	body := stmt[m[1]:]
	for src, dst := range r.DBMap {
		if src != dst {
			body = regexp.MustCompile("(^|[\\s(,=])`?"+regexp.QuoteMeta(src)+"`?\\.").ReplaceAllString(body, "${1}"+QuoteIdent(dst)+".")
		}
	}
	switch {
	case r.Staging:
		body = replicatedArgs.ReplaceAllString(body, "ENGINE = ${1}(")
		body = replicatedEmpty.ReplaceAllString(body, "ENGINE = ${1}()${3}")
		body = strings.ReplaceAll(body, "ENGINE = MergeTree()", "ENGINE = MergeTree")
	case r.ZKPathMap != nil:
		body = replicatedArgs.ReplaceAllStringFunc(body, func(s string) string {
			sm := replicatedArgs.FindStringSubmatch(s)
			return fmt.Sprintf("ENGINE = Replicated%s('%s', '%s'%s", sm[1], r.ZKPathMap(sm[2]), sm[3], sm[4])
		})
	}
	return head + body, nil
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
