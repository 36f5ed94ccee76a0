// Freeze mode's export side: FREEZE a partition, find its shadow directory and stream the
// frozen parts as a parts-tar object. The format and paths are in frozen.go.

package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
)

// Export modes ([clickhouse] mode).
const (
	ModeLogical = "logical"
	ModeFreeze  = "freeze"
)

// freezeMu serializes freezes in this process: 18.16 names a freeze's shadow directory only
// by bumping shadow/increment.txt, so the number read right after a freeze is that freeze's
// only while no other freeze runs on the same server.
var freezeMu sync.Mutex

// frozen is one partition frozen into a shadow directory; with no parts, a partition that was
// gone when frozen.
type frozen struct {
	shadow string   // shadow/<N or name>, removed by remove
	dir    string   // the table's directory inside it, holding one directory per part
	parts  []string // part directory names, sorted
	rows   uint64   // from the parts' count.txt
}

func (f *frozen) remove() error { return os.RemoveAll(f.shadow) }

// freezePartition hard-links a partition's active parts into the server's shadow directory.
func freezePartition(ctx context.Context, srv *Server, root localRoot, db, table, partitionID string) (*frozen, error) {
	dataPath, err := tableDataPath(ctx, srv, db, table)
	if err != nil {
		return nil, fmt.Errorf("freeze %s.%s partition %s: %w", db, table, partitionID, err)
	}
	// The freeze mirrors the table's directory under its disk's path into that disk's shadow/:
	// data/<db>/<table>/ on Ordinary databases, store/<xxx>/<uuid>/ on Atomic ones. Only the
	// default disk's is read here, so a table on another disk (a storage policy) is refused
	// before a freeze leaves a shadow there that nothing would remove.
	rel, under := strings.CutPrefix(dataPath, root.server)
	if !under {
		return nil, fmt.Errorf("freeze %s.%s partition %s on %s: the table keeps its parts in %s, not on the default disk (%s), and freeze mode reads the default disk alone: set [clickhouse] mode = \"logical\"", db, table, partitionID, srv.Addr, dataPath, root.server)
	}
	sql := fmt.Sprintf("ALTER TABLE %s.%s FREEZE PARTITION ID %s", QuoteIdent(db), QuoteIdent(table), QuoteString(partitionID))
	shadowDir := filepath.Join(root.local, "shadow")
	id, err := newQueryID()
	if err != nil {
		return nil, err
	}
	qctx := ch.Context(ctx, ch.WithQueryID(id))
	var name string
	if srv.Caps.FreezeWithName {
		name = freezePrefix + randomHex()
		if err := srv.Conn.Exec(qctx, sql+" WITH NAME "+QuoteString(name)); err != nil {
			err = fmt.Errorf("freeze %s.%s partition %s on %s: %w", db, table, partitionID, srv.Addr, err)
			return nil, removeFailedFreeze(ctx, srv, id, err, func() string { return filepath.Join(shadowDir, name) })
		}
	} else {
		freezeMu.Lock()
		before, beforeErr := readIncrement(shadowDir)
		err := srv.Conn.Exec(qctx, sql)
		if err != nil {
			err = fmt.Errorf("freeze %s.%s partition %s on %s: %w", db, table, partitionID, srv.Addr, err)
			err = removeFailedFreeze(ctx, srv, id, err, func() string {
				// Only a freeze that bumped the number once, under freezeMu, is surely this one.
				after, afterErr := readIncrement(shadowDir)
				if n, err := freezeIncrement(before, beforeErr, after, afterErr); err == nil {
					return filepath.Join(shadowDir, strconv.FormatUint(n, 10))
				}
				return ""
			})
		}
		after, afterErr := readIncrement(shadowDir)
		freezeMu.Unlock()
		if err != nil {
			return nil, err
		}
		n, err := freezeIncrement(before, beforeErr, after, afterErr)
		if err != nil {
			return nil, fmt.Errorf("freeze %s.%s partition %s on %s: %s: %w", db, table, partitionID, srv.Addr, filepath.Join(shadowDir, "increment.txt"), err)
		}
		name = strconv.FormatUint(n, 10)
	}
	f := &frozen{shadow: filepath.Join(shadowDir, name)}
	if err := f.scan(rel); err != nil {
		_ = f.remove()
		if errors.Is(err, fs.ErrNotExist) {
			// A freeze of a partition without active parts succeeds and makes no directory:
			// the partition was dropped (DROP PARTITION, TTL) since it was listed. Its object
			// is then empty, as a logical one would be. Parts still there mean the shadow is
			// somewhere else (another disk) and this is an error.
			if parts, _, cerr := partitionParts(ctx, srv, db, table, partitionID); cerr == nil && len(parts) == 0 {
				return &frozen{shadow: f.shadow}, nil
			}
		}
		return nil, fmt.Errorf("freeze %s.%s partition %s on %s: %w", db, table, partitionID, srv.Addr, err)
	}
	return f, nil
}

// freezePrefix begins the name of every freeze tracevault makes with FREEZE ... WITH NAME, so
// that its shadow directories can be told from other tools'.
const freezePrefix = "tracevault_"

// staleFreezeAge is how long ago a tracevault freeze's directory must have last changed for a
// backup to remove it as one that a killed tracevault left (the process's own removal never
// ran). A live freeze's directory changes only while the FREEZE runs and stays while its
// partition uploads: a day is far beyond any partition's upload.
const staleFreezeAge = 24 * time.Hour

// removeStaleFreezes removes, from the shadow/ directory of the disk at local, the tracevault
// freezes whose directory last changed before now - staleFreezeAge, and returns their names.
// Each pins its parts' disk space, which grows as merges replace the live parts, and nothing
// else would ever remove it. 18.16's numbered freezes (no WITH NAME) cannot be told from other
// tools' and are left alone. A directory that cannot be read or removed is an error; the rest
// are still removed.
func removeStaleFreezes(local string, now time.Time) ([]string, error) {
	shadow := filepath.Join(local, "shadow")
	entries, err := os.ReadDir(shadow)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list freezes in %s: %w", shadow, err)
	}
	var removed []string
	var errs []error
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), freezePrefix) {
			continue
		}
		info, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // its own backup removed it just now
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if now.Sub(info.ModTime()) < staleFreezeAge {
			continue
		}
		if err := os.RemoveAll(filepath.Join(shadow, e.Name())); err != nil {
			errs = append(errs, fmt.Errorf("remove the stale freeze %s: %w", filepath.Join(shadow, e.Name()), err))
			continue
		}
		removed = append(removed, e.Name())
	}
	return removed, errors.Join(errs...)
}

// freezeEndWait bounds how long a failed freeze waits for the server to stop running it.
var freezeEndWait = time.Minute

// removeFailedFreeze removes what a FREEZE that returned err may have left, and returns err. A
// FREEZE whose connection broke may go on on the server, and one whose server was killed leaves
// a half-made shadow directory: either pins the frozen parts' disk space until removed, and
// nothing else would remove it. So it waits (whatever ctx says, for up to freezeEndWait) until
// the server no longer runs the query id, then removes the directory shadow returns ("": none
// that is surely this freeze's). Removing it is right even when the wait fails, as the name
// is this freeze's alone; the error then says what to check.
func removeFailedFreeze(ctx context.Context, srv *Server, id string, err error, shadow func() string) error {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), freezeEndWait+10*time.Second)
	defer cancel()
	exec := func(ctx context.Context, sql string) error { return srv.Conn.Exec(ctx, sql) }
	runs := func(ctx context.Context, id string) (bool, error) {
		var n uint64
		qerr := srv.Conn.QueryRow(ctx, countRunningSQL(id)).Scan(&n)
		return n > 0, qerr
	}
	endErr := awaitQueryEnd(wctx, srv.Addr, id, freezeEndWait, exec, runs)
	dir := shadow()
	if dir == "" {
		return err
	}
	if rmErr := os.RemoveAll(dir); rmErr != nil {
		return fmt.Errorf("%w; and its shadow directory %s could not be removed (remove it by hand: it pins the frozen parts' disk space): %v", err, dir, rmErr)
	}
	if endErr != nil {
		return fmt.Errorf("%w; its shadow directory %s was removed, but the server may still have been running the freeze (%v): check that %s is gone", err, dir, endErr, dir)
	}
	return err
}

// errPatchParts: a frozen partition had patch parts, or may have had them when it was frozen.
//
// Freeze mode cannot carry a partition's patch parts, so it exports such a partition logically
// (a SELECT applies them; recorded as FormatNative). On 26.7, measured:
//   - FREEZE hard-links a partition's parts but never its patch parts: neither FREEZE PARTITION
//     ID 'P', nor FREEZE PARTITION ID 'patch-<hash>-P', nor a whole-table FREEZE holds one
//     (ClickHouse#116677: BACKUP leaves them out too).
//   - Copied by hand, they would not restore: ATTACH gives every part a new block number, and a
//     patch part finds the rows it updates by the part name and data version it recorded, so it
//     silently stops applying (it applied only where the attach happened to reproduce the
//     original part names); and the restore's REPLACE PARTITION from its staging table refuses
//     a partition with unapplied patch parts (ClickHouse#107386).
//   - Materializing them first (ALTER TABLE ... APPLY PATCHES) is a mutation of the live table
//     the backup reads: it rewrites the partition's parts while Langfuse writes to it, and a
//     backup must not change what it backs up.
var errPatchParts = errors.New("the partition has patch parts (lightweight updates), which a freeze leaves out")

// freezeUnpatched freezes a partition that had no patch parts when it was listed, and returns
// errPatchParts, with the freeze removed, unless the freeze holds its rows as a SELECT reads
// them: a lightweight update may have come between the listing and the freeze. Right after the
// freeze, the partition must have no patch parts and every frozen part must still be active;
// a patch part gone since is one merged into a part, which is then no longer active.
func freezeUnpatched(ctx context.Context, srv *Server, root localRoot, db, table, partitionID string) (*frozen, error) {
	f, err := freezePartition(ctx, srv, root, db, table, partitionID)
	if err != nil || !srv.Caps.PatchParts || len(f.parts) == 0 {
		return f, err
	}
	parts, patches, err := partitionParts(ctx, srv, db, table, partitionID)
	if err == nil && len(patches) == 0 && allIn(f.parts, parts) {
		return f, nil
	}
	if rmErr := f.remove(); rmErr != nil {
		return nil, fmt.Errorf("remove the shadow directory %s: %w", f.shadow, rmErr)
	}
	if err != nil {
		return nil, fmt.Errorf("freeze %s.%s partition %s: %w", db, table, partitionID, err)
	}
	if len(patches) == 0 {
		return nil, fmt.Errorf("freeze %s.%s partition %s on %s: %w", db, table, partitionID, srv.Addr, errMergedWhileFrozen)
	}
	return nil, fmt.Errorf("freeze %s.%s partition %s on %s: %w", db, table, partitionID, srv.Addr, errPatchParts)
}

// errMergedWhileFrozen: no patch part is left, but a frozen part was merged away meanwhile, and a
// patch part may have been merged into it. Inserts alone make such merges, so the partition is
// frozen again (freezeAgain times) before it is exported logically.
var errMergedWhileFrozen = fmt.Errorf("a frozen part was merged away while it was frozen: %w", errPatchParts)

// freezeAgain bounds the freezes of a partition whose parts merge while it is frozen.
const freezeAgain = 3

// allIn says whether every name of sub is in sorted.
func allIn(sub, sorted []string) bool {
	for _, name := range sub {
		if _, ok := slices.BinarySearch(sorted, name); !ok {
			return false
		}
	}
	return true
}

// freezeIncrement decides which shadow directory an 18.16 freeze made, from shadow/increment.txt
// read just before and just after it under freezeMu. The freeze bumped the counter by one; any
// other step means someone else froze on this server meanwhile (another tracevault, a manual
// FREEZE, another backup tool), and the directory read could be theirs: never upload it. Their
// directories and ours are left alone, since which one is ours cannot be told.
func freezeIncrement(before uint64, beforeErr error, after uint64, afterErr error) (uint64, error) {
	switch {
	case errors.Is(beforeErr, fs.ErrNotExist):
		before = 0 // the server's first freeze creates the file
	case beforeErr != nil:
		return 0, fmt.Errorf("read before the freeze: %w", beforeErr)
	}
	switch {
	case afterErr != nil:
		return 0, fmt.Errorf("read after the freeze: %w; is data_path the mount of this replica's data?", afterErr)
	case after == before+1:
		return after, nil
	case after <= before:
		return 0, fmt.Errorf("this freeze was not counted (%d then %d); is data_path the mount of this replica's data?", before, after)
	default:
		return 0, fmt.Errorf("went from %d to %d during this freeze: another freeze ran on this server at the same time, so shadow/%d may not be this one; "+
			"rerun the backup when no other freeze runs (another tracevault or backup tool on this server), and remove shadow/%d to shadow/%d once they are done", before, after, after, before+1, after)
	}
}

func readIncrement(shadowDir string) (uint64, error) {
	b, err := os.ReadFile(filepath.Join(shadowDir, "increment.txt"))
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
}

// scan finds the table directory in the shadow tree: table, the table's directory relative to
// the data path, when the server reported one under it; else, as a fallback, the parent of the
// first part directory found (data/<db>/<table>, or store/<xxx>/<uuid> on Atomic databases).
// It sums the parts' rows.
func (f *frozen) scan(table string) error {
	if table != "" {
		if !filepath.IsLocal(table) {
			return fmt.Errorf("table directory %q is not inside the data path", table)
		}
		f.dir = filepath.Join(f.shadow, table)
		if _, err := os.Stat(f.dir); err != nil {
			return fmt.Errorf("shadow directory %s holds no parts of this table: %w", f.shadow, err)
		}
	} else if err := filepath.WalkDir(f.shadow, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && d.Name() == "checksums.txt" {
			f.dir = filepath.Dir(filepath.Dir(p))
			return fs.SkipAll
		}
		return nil
	}); err != nil {
		return fmt.Errorf("read shadow directory: %w", err)
	}
	if f.dir == "" {
		return fmt.Errorf("shadow directory %s holds no parts", f.shadow)
	}
	entries, err := os.ReadDir(f.dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		f.parts = append(f.parts, e.Name())
		if b, err := os.ReadFile(filepath.Join(f.dir, e.Name(), "count.txt")); err == nil {
			n, _ := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
			f.rows += n
		}
	}
	if len(f.parts) == 0 {
		return fmt.Errorf("shadow directory %s holds no parts", f.shadow)
	}
	sort.Strings(f.parts)
	return nil
}

// freezeReader freezes its partition on the first Read and streams the parts as a tar, so a
// partition whose object is reused is never frozen. Close removes the shadow directory.
type freezeReader struct {
	freeze func() (*frozen, error)
	f      *frozen
	pr     *io.PipeReader
	done   chan struct{}
	err    error
}

func (z *freezeReader) Read(p []byte) (int, error) {
	if z.f == nil && z.err == nil {
		z.f, z.err = z.freeze()
		if z.err == nil {
			pr, pw := io.Pipe()
			z.pr, z.done = pr, make(chan struct{})
			go func() {
				defer close(z.done)
				pw.CloseWithError(writePartsTar(pw, z.f.dir, z.f.parts))
			}()
		}
	}
	if z.err != nil {
		return 0, z.err
	}
	return z.pr.Read(p)
}

// Rows is the frozen parts' row count, which the manifest records for the object.
func (z *freezeReader) Rows() int64 {
	if z.f == nil {
		return 0
	}
	return int64(z.f.rows)
}

func (z *freezeReader) Close() error {
	if z.pr != nil {
		z.pr.Close()
		<-z.done
	}
	if z.f != nil {
		return z.f.remove()
	}
	return nil
}
