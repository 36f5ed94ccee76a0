package migrate

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// NilVersion is golang-migrate's "no migration applied".
const NilVersion int64 = -1

// Migration is one version: its up file and, if present, its down file.
type Migration struct {
	Version int64  `json:"version"`
	Title   string `json:"title"`
	Up      string `json:"up"`             // path of the .up.sql file
	Down    string `json:"down,omitempty"` // path of the .down.sql file; empty when there is none
}

// golang-migrate's file naming: {version}_{title}.{up|down}.{ext}; only .sql is read here.
var fileName = regexp.MustCompile(`^([0-9]+)_(.*)\.(up|down)\.sql$`)

// Load reads a migrations directory, sorted by version. Files that do not follow the naming are
// ignored, as golang-migrate ignores them; two files for the same version and direction are an
// error, since which one runs would be a matter of chance.
func Load(dir string) ([]Migration, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read migrations directory %s: %w; set [migrate] clickhouse_dir/postgres_dir or pass --dir", dir, err)
	}
	byVersion := map[int64]*Migration{}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		m := fileName.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		v, err := strconv.ParseInt(m[1], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("migration file %s: version %q does not fit in 64 bits", filepath.Join(dir, e.Name()), m[1])
		}
		mig := byVersion[v]
		if mig == nil {
			mig = &Migration{Version: v, Title: m[2]}
			byVersion[v] = mig
		}
		path := filepath.Join(dir, e.Name())
		slot := &mig.Up
		if m[3] == "down" {
			slot = &mig.Down
		}
		if *slot != "" {
			return nil, fmt.Errorf("migration version %d has two %s files, %s and %s; keep one", v, m[3], *slot, path)
		}
		*slot = path
	}
	out := make([]Migration, 0, len(byVersion))
	for _, m := range byVersion {
		if m.Up == "" {
			return nil, fmt.Errorf("migration version %d (%s) has a .down.sql but no .up.sql file in %s", m.Version, m.Title, dir)
		}
		out = append(out, *m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

// Checksum is the SHA-256 of a file's bytes, hex encoded: what drift is measured against.
func Checksum(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read migration %s: %w", path, err)
	}
	return checksumOf(b), nil
}

func checksumOf(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Expand fills the template of a migration file: {{cluster}} becomes "ON CLUSTER name" when a
// cluster is configured and nothing otherwise, so one file serves clustered and single servers.
// {{database}} becomes the migrated database's name, for what must spell it out, above all a
// replicated table's ZooKeeper path ('/clickhouse/tables/{shard}/{{database}}/traces'), so that
// each database gets its own replication groups: the server's own {database} macro would do
// that too, but stays unexpanded in the table's definition, where restores and replica rebuilds
// read the path. Without a database, {{database}} is left as written for the server to reject,
// rather than letting two databases share one path.
func Expand(sql, cluster, database string) string {
	repl := ""
	if cluster != "" {
		repl = "ON CLUSTER " + cluster
	}
	sql = strings.ReplaceAll(sql, "{{cluster}}", repl)
	if database == "" {
		return sql
	}
	return strings.ReplaceAll(sql, "{{database}}", database)
}
