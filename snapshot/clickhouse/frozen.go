// Frozen parts on disk, shared by both sides of freeze mode: where a server keeps its data
// (remapped to this host's mount), the parts-tar object format, and unpacking it into detached/.
// The export side is in freeze.go; the restore package attaches what UnpackDetached unpacks.

package clickhouse

import (
	"archive/tar"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tracevault/tracevault/snapshot/clickhouse/partsum"
	"github.com/tracevault/tracevault/snapshot/store"
)

// Object formats of a partition, recorded in the manifest so a restore loads each object the
// way it was made, whatever mode the current config asks for.
const (
	FormatNative   = "native"    // SELECT ... FORMAT Native; loaded with INSERT ... FORMAT Native
	FormatPartsTar = "parts-tar" // a tar of the frozen part directories; loaded with ATTACH PARTITION
)

// LocalFS maps each server's own absolute paths onto this host, once per server. dataPath, when
// set, replaces the server's data path prefix: the volume is mounted somewhere else here than in
// the server. Freeze-mode backups read frozen parts through it, and restores unpack them with it.
type LocalFS struct {
	dataPath string
	servers  []*Server // every server this run talks to, which a mount could belong to

	mu     sync.Mutex
	roots  map[string]localRoot  // by server address
	facts  map[string]serverFact // by server address
	macros map[string]macroFact  // by server address, read only where the start cannot tell
	probes int                   // DDL probes run, which the read-only proof should spare
	swept  map[string]bool       // by server address: its stale freezes were removed
}

// macroFact is a server's <macros> as it runs with them, or why they could not be read.
type macroFact struct {
	macros map[string]string
	err    error
}

type localRoot struct {
	server, local string
	err           error
}

// serverFact is what root compares a server's data directory against.
type serverFact struct {
	path    string // the server's data path
	started int64  // unix seconds, from its uptime
	err     error
}

// NewLocalFS maps servers' paths onto this host; dataPath is [clickhouse] data_path, empty when
// the servers' paths are this host's. servers are all the servers of the run: a data directory
// found here is only taken for one of them when it cannot be another's.
func NewLocalFS(dataPath string, servers []*Server) *LocalFS {
	return &LocalFS{dataPath: dataPath, servers: servers}
}

// removeStale removes the stale freezes on the disk of srv, whose root is r, once per LocalFS
// (one backup), and logs each one removed: see removeStaleFreezes. Failing to remove them is
// logged too, and does not fail the backup.
func (l *LocalFS) removeStale(r localRoot, srv *Server, log *slog.Logger) {
	l.mu.Lock()
	done := l.swept[srv.Addr]
	if l.swept == nil {
		l.swept = map[string]bool{}
	}
	l.swept[srv.Addr] = true
	l.mu.Unlock()
	if done {
		return
	}
	removed, err := removeStaleFreezes(r.local, time.Now())
	for _, name := range removed {
		log.Warn("removed a freeze that a killed tracevault left: its hard links pinned the frozen parts' disk space",
			"server", srv.Addr, "dir", filepath.Join(r.local, "shadow", name), "older_than", staleFreezeAge)
	}
	if err != nil {
		log.Warn("could not remove every stale freeze; remove them by hand, as they pin disk space", "server", srv.Addr, "err", err)
	}
}

// Check says why srv's data path is not on this host, or nil if it is: frozen parts load only
// into such a server.
func (l *LocalFS) Check(ctx context.Context, srv *Server) error {
	_, err := l.root(ctx, srv)
	return err
}

// UnpackDetached unpacks a parts-tar object of one partition into the detached/ directory of
// db.table on srv, owned like the table's own directory, for ALTER TABLE ... ATTACH PARTITION.
// Whatever detached/ held of that partition goes first: ATTACH PARTITION takes every detached
// part of the partition, so only a table of the caller's own (a restore's staging twin) may be
// given. Other partitions' parts are left alone, as they may be loading beside this one, and an
// archive holding a part of another partition is refused before it could be attached there.
func (l *LocalFS) UnpackDetached(ctx context.Context, srv *Server, db, table, partition string, obj io.Reader) error {
	root, err := l.root(ctx, srv)
	if err != nil {
		return err
	}
	dataPath, err := tableDataPath(ctx, srv, db, table)
	if err != nil {
		return err
	}
	dir := root.path(dataPath)
	uid, gid, err := ownerOf(dir)
	if err != nil {
		return fmt.Errorf("directory of %s.%s on %s: %w", db, table, srv.Addr, err)
	}
	detached := filepath.Join(dir, "detached")
	if err := os.MkdirAll(detached, 0o750); err != nil {
		return err
	}
	if err := os.Lchown(detached, uid, gid); err != nil {
		return fmt.Errorf("give %s to the server's user: %w", detached, err)
	}
	entries, err := os.ReadDir(detached)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if partOf(e.Name(), partition) {
			if err := os.RemoveAll(filepath.Join(detached, e.Name())); err != nil {
				return fmt.Errorf("clear %s: %w", detached, err)
			}
		}
	}
	_, err = extractPartsTar(obj, detached, partition, uid, gid)
	return err
}

// partOf says whether a part directory name belongs to partition id: named <id>_<blocks>, or,
// in a table of the old MergeTree(date, ...) syntax, <yyyymmdd>_<yyyymmdd>_<blocks> in the
// month yyyymm.
func partOf(name, id string) bool {
	if strings.HasPrefix(name, id+"_") {
		return true
	}
	digits := func(s string) bool {
		for _, c := range s {
			if c < '0' || c > '9' {
				return false
			}
		}
		return true
	}
	return len(id) == 6 && len(name) > 18 && name[8] == '_' && name[17] == '_' &&
		digits(name[:8]) && digits(name[9:17]) && name[:6] == id
}

// root returns the server's data path and where it is on this host, or why it is not here.
// Paths alone cannot tell sidecars apart, since every replica usually uses /var/lib/clickhouse:
// the data directory found here must be this server's. Its status file, which the server
// rewrites as it starts, says when it started; when that matches this server's start and no
// other server that maps to the same directory here started near then, the directory is this
// server's, proven with two reads. Replicas started within a minute of each other (a cluster
// brought up at once) are told apart by the macros of the configuration the server wrote into
// its directory as it started (see byMacros): each replica has its own. Only where neither
// decides (no macros that tell the servers apart, a start that does not match) does a probe
// database, whose directory must appear here, decide: DDL, about 2 s a replica on a busy 18.16.
func (l *LocalFS) root(ctx context.Context, srv *Server) (localRoot, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if r, ok := l.roots[srv.Addr]; ok {
		return r, r.err
	}
	if l.roots == nil {
		l.roots, l.facts = map[string]localRoot{}, map[string]serverFact{}
	}
	r := localRoot{}
	f := l.fact(ctx, srv)
	r.server, r.err = f.path, f.err
	if r.err == nil {
		r.local = remapPath(r.server, r.server, l.dataPath)
		r.err = l.prove(ctx, srv, r, f)
	}
	l.roots[srv.Addr] = r
	return r, r.err
}

// startSlack is how far a status file's start may be from the server's uptime: the server
// writes the file a moment after its uptime clock starts, and the times are in whole seconds.
// alikeSlack is how near another server's start must be for the file to be possibly its, and
// it is much wider: a busy server writes its status file seconds after its uptime clock starts
// (seen on CI), and a second reading of a start may round the other way. A wrong "alike" costs
// one probe; a wrong "not alike" would read another server's parts as this one's.
const (
	startSlack = 2
	alikeSlack = 60
)

func (l *LocalFS) prove(ctx context.Context, srv *Server, r localRoot, f serverFact) error {
	started, err := statusStarted(ctx, srv, filepath.Join(r.local, "status"))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return notLocal(srv, r, err)
		}
		l.probes++
		return probeLocal(ctx, srv, r)
	}
	own := abs(started-f.started) <= startSlack
	others := l.sameDir(ctx, srv, r)
	alike := false
	for _, o := range others {
		alike = alike || abs(started-o.started) <= alikeSlack
	}
	if own && !alike {
		return nil
	}
	if len(others) > 0 {
		if decided, err := l.byMacros(ctx, srv, r, own, started, others); decided {
			return err
		}
	}
	l.probes++
	return probeLocal(ctx, srv, r)
}

// other is another server of the run whose data path maps to the same directory here.
type other struct {
	srv     *Server
	started int64
}

// sameDir lists the other servers of the run that map to the same directory here, and so
// could own what is in it.
func (l *LocalFS) sameDir(ctx context.Context, srv *Server, r localRoot) []other {
	var out []other
	for _, o := range l.servers {
		if o.Addr == srv.Addr {
			continue
		}
		f := l.fact(ctx, o)
		if f.err != nil {
			continue // unreachable now: it cannot be frozen or loaded in this run either
		}
		// Cleaned: a mount point given without the server's trailing slash is the same directory.
		here := filepath.Clean(remapPath(f.path, f.path, l.dataPath))
		if here == filepath.Clean(r.local) {
			out = append(out, other{o, f.started})
		}
	}
	return out
}

// byMacros decides, where the status file's start cannot, whose the directory is by the
// macros of the configuration its server wrote into it as it started (preprocessed_configs/),
// compared with each server's own (system.macros): a replica's macros name it, and no two
// replicas of a cluster share them. The directory is srv's when its start matched srv's, its
// macros are srv's and no other server that maps here has them; it is another's when its
// macros and start are that server's and not srv's. Anything else (no macros, servers sharing
// them, a configuration edited since the start) leaves it undecided: decided is false.
func (l *LocalFS) byMacros(ctx context.Context, srv *Server, r localRoot, own bool, started int64, others []other) (decided bool, err error) {
	here, err := configMacros(filepath.Join(r.local, "preprocessed_configs"))
	if err != nil || len(here) == 0 {
		return false, nil
	}
	mine := l.serverMacros(ctx, srv)
	if mine.err != nil {
		return false, nil
	}
	var owner *Server // another server whose macros and start are the directory's
	for _, o := range others {
		theirs := l.serverMacros(ctx, o.srv)
		if theirs.err != nil {
			return false, nil
		}
		if !maps.Equal(theirs.macros, here) {
			continue
		}
		// Two servers with the directory's macros, or one whose start is not its status
		// file's, tell nothing.
		if owner != nil || abs(started-o.started) > startSlack {
			return false, nil
		}
		owner = o.srv
	}
	switch {
	case own && owner == nil && maps.Equal(mine.macros, here):
		return true, nil
	case owner != nil && !maps.Equal(mine.macros, here):
		return true, notLocal(srv, r, fmt.Errorf("its status file and the macros of its configuration are those of clickhouse %s", owner.Addr))
	}
	return false, nil
}

// serverMacros reads, once, a server's macros.
func (l *LocalFS) serverMacros(ctx context.Context, srv *Server) macroFact {
	if m, ok := l.macros[srv.Addr]; ok {
		return m
	}
	if l.macros == nil {
		l.macros = map[string]macroFact{}
	}
	var m macroFact
	m.macros, m.err = readMacros(ctx, srv)
	l.macros[srv.Addr] = m
	return m
}

// configMacros reads the <macros> of the preprocessed configuration files a server writes into
// dir (its <path>/preprocessed_configs) as it starts and as it reloads them: empty when none has
// any, an error when they disagree or cannot be read.
func configMacros(dir string) (map[string]string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.xml"))
	if err != nil {
		return nil, err
	}
	var found map[string]string
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			return nil, err
		}
		m, err := parseConfigMacros(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if m == nil {
			continue
		}
		if found != nil && !maps.Equal(found, m) {
			return nil, fmt.Errorf("the files of %s name different macros", dir)
		}
		found = m
	}
	return found, nil
}

// parseConfigMacros returns the <macros> of a ClickHouse configuration (root <yandex> or
// <clickhouse>), nil when it has none.
func parseConfigMacros(b []byte) (map[string]string, error) {
	var doc struct {
		Macros *struct {
			Items []struct {
				XMLName xml.Name
				Value   string `xml:",chardata"`
			} `xml:",any"`
		} `xml:"macros"`
	}
	if err := xml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("parse the configuration: %w", err)
	}
	if doc.Macros == nil {
		return nil, nil
	}
	out := map[string]string{}
	for _, it := range doc.Macros.Items {
		out[it.XMLName.Local] = strings.TrimSpace(it.Value)
	}
	return out, nil
}

// fact reads, once, a server's data path and when it started.
func (l *LocalFS) fact(ctx context.Context, srv *Server) serverFact {
	if f, ok := l.facts[srv.Addr]; ok {
		return f
	}
	f := serverFact{}
	if f.path, f.err = DataPath(ctx, srv); f.err == nil {
		if f.err = srv.Conn.QueryRow(ctx, "SELECT toInt64(toUnixTimestamp(now())) - toInt64(uptime())").Scan(&f.started); f.err != nil {
			f.err = fmt.Errorf("read when clickhouse %s started: %w", srv.Addr, f.err)
		}
	}
	l.facts[srv.Addr] = f
	return f
}

// statusStarted reads the "Started at:" line of a server's status file, a local time in the
// server's time zone, which the server itself turns into unix seconds.
func statusStarted(ctx context.Context, srv *Server, path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	at, ok := parseStatusStarted(b)
	if !ok {
		return 0, fmt.Errorf("%s has no \"Started at:\" line", path)
	}
	var started int64
	if err := srv.Conn.QueryRow(ctx, "SELECT toInt64(toUnixTimestamp(toDateTime(?)))", at).Scan(&started); err != nil {
		return 0, fmt.Errorf("read the start in %s on clickhouse %s: %w", path, srv.Addr, err)
	}
	return started, nil
}

// parseStatusStarted finds "Started at: YYYY-MM-DD hh:mm:ss" in a status file (PID, start and
// revision, one per line) and returns the time as written.
func parseStatusStarted(b []byte) (string, bool) {
	for _, line := range strings.Split(string(b), "\n") {
		at, ok := strings.CutPrefix(line, "Started at: ")
		if !ok {
			continue
		}
		at = strings.TrimSpace(at)
		if _, err := time.Parse(time.DateTime, at); err != nil {
			return "", false
		}
		return at, true
	}
	return "", false
}

func abs(n int64) int64 {
	if n < 0 {
		return -n
	}
	return n
}

// path maps a path the server reported onto this host.
func (r localRoot) path(serverPath string) string { return remapPath(serverPath, r.server, r.local) }

// DataPath is the server's <path> setting, with a trailing slash: the default disk's path where the server lists
// its disks (19.15+), else derived from the system database's data directory (<path>/data/system/
// on 18.16). Modern servers' system database may sit anywhere, Atomic or not, so it is only the
// fallback.
func DataPath(ctx context.Context, srv *Server) (string, error) {
	if srv.Caps.Disks {
		var p string
		if err := srv.Conn.QueryRow(ctx, "SELECT path FROM system.disks WHERE name = 'default'").Scan(&p); err != nil {
			return "", fmt.Errorf("read the default disk's path of clickhouse %s: %w", srv.Addr, err)
		}
		if !strings.HasPrefix(p, "/") {
			return "", fmt.Errorf("the default disk of clickhouse %s has the relative path %q", srv.Addr, p)
		}
		return strings.TrimSuffix(p, "/") + "/", nil
	}
	var p string
	if err := srv.Conn.QueryRow(ctx, "SELECT data_path FROM system.databases WHERE name = 'system'").Scan(&p); err != nil {
		return "", fmt.Errorf("read the data path of clickhouse %s: %w", srv.Addr, err)
	}
	return dataPathOf(p)
}

// tableDataPath is the directory holding a table's parts, as the server reports it: data_paths
// (one per disk) on modern servers, data_path on 18.16. Freeze mode reads the default disk only,
// so a table spread over several disks is refused rather than half backed up.
func tableDataPath(ctx context.Context, srv *Server, db, table string) (string, error) {
	if !srv.Caps.TableDataPaths {
		var p string
		if err := srv.Conn.QueryRow(ctx, "SELECT data_path FROM system.tables WHERE database = ? AND name = ?", db, table).Scan(&p); err != nil {
			return "", fmt.Errorf("read the data path of %s.%s on %s: %w", db, table, srv.Addr, err)
		}
		return p, nil
	}
	var paths []string
	if err := srv.Conn.QueryRow(ctx, "SELECT data_paths FROM system.tables WHERE database = ? AND name = ?", db, table).Scan(&paths); err != nil {
		return "", fmt.Errorf("read the data paths of %s.%s on %s: %w", db, table, srv.Addr, err)
	}
	if len(paths) != 1 {
		return "", fmt.Errorf("%s.%s on %s keeps its parts in %d directories (%s); freeze mode reads one disk: set [clickhouse] mode = \"logical\"", db, table, srv.Addr, len(paths), strings.Join(paths, ", "))
	}
	return paths[0], nil
}

func dataPathOf(systemDB string) (string, error) {
	p := strings.TrimSuffix(systemDB, "/")
	for _, suffix := range []string{"/data/system", "/store"} {
		if root, ok := strings.CutSuffix(p, suffix); ok {
			return root + "/", nil
		}
	}
	if i := strings.Index(p, "/store/"); i >= 0 {
		return p[:i+1], nil
	}
	return "", fmt.Errorf("cannot tell the data path from the system database's directory %q", systemDB)
}

// remapPath replaces the server's data path prefix with where it is mounted here.
func remapPath(p, serverRoot, localRoot string) string {
	if localRoot == "" || localRoot == serverRoot {
		return p
	}
	rest, ok := strings.CutPrefix(p, serverRoot)
	if !ok {
		return p
	}
	return filepath.Join(localRoot, rest)
}

// probeLocal proves that the data directory at r.local is srv's by creating a database and
// finding its directory there: DDL, slow on a busy 18.16, so only when reading cannot decide.
func probeLocal(ctx context.Context, srv *Server, r localRoot) error {
	name := "__tracevault_probe_" + randomHex()
	if err := srv.Conn.Exec(ctx, "CREATE DATABASE "+QuoteIdent(name)); err != nil {
		return fmt.Errorf("probe whether clickhouse %s keeps its data on this host: %w", srv.Addr, err)
	}
	// metadata/<db>/ on 18.16; an Atomic database has metadata/<db>.sql and a symlink into store/.
	_, statErr := os.Stat(filepath.Join(r.local, "metadata", name))
	if statErr != nil {
		if _, err := os.Stat(filepath.Join(r.local, "metadata", name+".sql")); err == nil {
			statErr = nil
		}
	}
	if err := srv.Conn.Exec(context.WithoutCancel(ctx), "DROP DATABASE IF EXISTS "+QuoteIdent(name)); err != nil {
		return fmt.Errorf("drop probe database %s on clickhouse %s: %w", name, srv.Addr, err)
	}
	if statErr != nil {
		return notLocal(srv, r, statErr)
	}
	return nil
}

func notLocal(srv *Server, r localRoot, why error) error {
	return fmt.Errorf("the data path of clickhouse %s (%s on the server) is not at %s on this host (%v): run tracevault beside the server with its data path mounted and set [clickhouse] data_path to the mount point, or set [clickhouse] mode = \"logical\"", srv.Addr, r.server, r.local, why)
}

func randomHex() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ObjectFormat is how the partition's object was written: FormatNative for records made before
// formats were recorded.
func (p PartitionRecord) ObjectFormat() string {
	if p.Format == "" {
		return FormatNative
	}
	return p.Format
}

// PartitionFormat is how the snapshot stored a partition of the table. Every replica's record
// of a partition comes from one backup, hence one mode.
func (t *TableRecord) PartitionFormat(id string) string {
	for _, p := range t.Partitions {
		if p.ID == id {
			return p.ObjectFormat()
		}
	}
	return FormatNative
}

// writePartsTar writes the part directories under dir as a tar stream, file by file, so memory
// stays flat whatever the partition's size.
func writePartsTar(w io.Writer, dir string, parts []string) error {
	tw := tar.NewWriter(w)
	for _, part := range parts {
		err := filepath.WalkDir(filepath.Join(dir, part), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			if !info.Mode().IsRegular() && !info.IsDir() {
				return nil
			}
			rel, err := filepath.Rel(dir, p)
			if err != nil {
				return err
			}
			hdr := &tar.Header{Name: filepath.ToSlash(rel), Mode: int64(info.Mode().Perm()), ModTime: info.ModTime(), Typeflag: tar.TypeReg, Size: info.Size()}
			if info.IsDir() {
				hdr.Name, hdr.Typeflag, hdr.Size = hdr.Name+"/", tar.TypeDir, 0
			}
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
			if info.IsDir() {
				return nil
			}
			fh, err := os.Open(p)
			if err != nil {
				return err
			}
			defer fh.Close()
			_, err = io.Copy(tw, fh)
			return err
		})
		if err != nil {
			return fmt.Errorf("archive part %s: %w", part, err)
		}
	}
	return tw.Close()
}

// extractPartsTar unpacks a parts tar into dst (a detached/ directory), owned by uid:gid, and
// returns the part directory names; partition, unless empty, is the one every part must be of.
// Each part is checked against its own checksums.txt as it is written (partsum): a part damaged
// before its backup is never attached. The tar reader stops at the end-of-archive blocks, before
// the object's reader sees EOF, which is where the repository compares the object's SHA-256: so
// the rest is drained here, and on any error, a checksum mismatch included, the parts extracted
// so far are removed, so that nothing of a damaged or swapped object is ever attached.
func extractPartsTar(r io.Reader, dst, partition string, uid, gid int) ([]string, error) {
	parts, err := untarParts(r, dst, partition, uid, gid)
	if err == nil {
		if _, err = io.Copy(io.Discard, r); err != nil {
			err = fmt.Errorf("read parts archive to its end: %w", err)
		}
	}
	if err != nil {
		for _, part := range parts {
			if rmErr := os.RemoveAll(filepath.Join(dst, part)); rmErr != nil {
				err = errors.Join(err, fmt.Errorf("remove extracted part %s: %w", part, rmErr))
			}
		}
		return nil, err
	}
	return parts, nil
}

func untarParts(r io.Reader, dst, partition string, uid, gid int) ([]string, error) {
	chown := uid != os.Getuid() || gid != os.Getgid()
	seen := map[string]bool{}
	var parts []string
	var sums partsum.Archive
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			if err := sums.Finish(); err != nil {
				return parts, fmt.Errorf("the parts archive does not match its parts' checksums: %w", err)
			}
			return parts, nil
		}
		if err != nil {
			return parts, fmt.Errorf("read parts archive: %w", err)
		}
		// Cleaned first, so that "a/../b" counts as part b, which a failed extract removes.
		name := filepath.Clean(hdr.Name)
		if !filepath.IsLocal(name) {
			return parts, fmt.Errorf("parts archive entry %q leaves the detached directory", hdr.Name)
		}
		part, _, _ := strings.Cut(filepath.ToSlash(name), "/")
		if part == "." {
			return parts, fmt.Errorf("parts archive entry %q names no part directory", hdr.Name)
		}
		if !seen[part] {
			if partition != "" && !partOf(part, partition) {
				// The object is not the one its record names (swapped, or the record forged).
				return parts, fmt.Errorf("%w: the parts archive of partition %s holds part %q of another partition", store.ErrCorrupt, partition, part)
			}
			seen[part] = true
			parts = append(parts, part)
		}
		for k := range hdr.PAXRecords {
			// A sparse file's holes expand on extraction: a small object could fill the disk
			// before its checksum is compared. The writer never makes one.
			if strings.HasPrefix(k, "GNU.sparse.") {
				return parts, fmt.Errorf("parts archive entry %q is a sparse file", hdr.Name)
			}
		}
		p := filepath.Join(dst, name)
		switch hdr.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(p, 0o750)
		case tar.TypeReg:
			sum := sums.File(name)
			err = writeFile(p, io.TeeReader(tr, sum), os.FileMode(hdr.Mode).Perm())
			_ = sum.Close() // records; never fails
		default:
			return parts, fmt.Errorf("parts archive entry %q is not a file or directory", hdr.Name)
		}
		if err == nil && chown {
			err = os.Lchown(p, uid, gid)
		}
		if err != nil {
			return parts, fmt.Errorf("extract %s: %w", p, err)
		}
	}
}

func writeFile(p string, r io.Reader, perm os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
		return err
	}
	fh, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(fh, r); err != nil {
		fh.Close()
		return err
	}
	return fh.Close()
}

// ownerOf returns the uid and gid owning a path, so restored parts match the server's files.
func ownerOf(p string) (int, int, error) {
	info, err := os.Stat(p)
	if err != nil {
		return 0, 0, err
	}
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return os.Getuid(), os.Getgid(), nil
	}
	return int(st.Uid), int(st.Gid), nil
}
