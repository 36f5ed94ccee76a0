package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	mrand "math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// FS is the filesystem backend: a directory, the embedded default. Every file operation goes
// through an os.Root, so neither a hostile name nor a symlink planted in the repository can make
// it read, write or delete anything outside the directory.
type FS struct {
	root string
	rt   *os.Root
}

// ErrNameOutsideRoot is returned for an object name that could resolve outside the repository.
var ErrNameOutsideRoot = errors.New("name is not a plain relative path inside the repository")

// NewFS opens (and creates) a repository directory.
func NewFS(dir string) (*FS, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("create repository directory %s: %w", dir, err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("open repository directory %s: %w", dir, err)
	}
	return &FS{root: dir, rt: root}, nil
}

func (f *FS) String() string { return "file://" + f.root }

// CheckName accepts only the names the repository writes: slash-separated, relative, without
// empty, "." or ".." segments, backslashes or NUL bytes. A directory of blobs holds the same
// names, for the same reason: any other could resolve onto another file or outside it.
func CheckName(name string) error {
	bad := name == "" || strings.ContainsAny(name, "\\\x00") || !filepath.IsLocal(filepath.FromSlash(name))
	for _, seg := range strings.Split(name, "/") {
		bad = bad || seg == "" || seg == "." || seg == ".."
	}
	if bad {
		return fmt.Errorf("%w: %q", ErrNameOutsideRoot, name)
	}
	return nil
}

// Put writes to a temporary file in the target directory, syncs it and renames it into place,
// then syncs the directory, so a crash leaves either the old state or the whole object.
func (f *FS) Put(ctx context.Context, name string, r io.Reader) (int64, error) {
	n, err := f.put(ctx, name, r)
	if err != nil {
		return n, fmt.Errorf("put %s to %s: %w", name, f, err)
	}
	return n, nil
}

func (f *FS) put(ctx context.Context, name string, r io.Reader) (int64, error) {
	if err := CheckName(name); err != nil {
		return 0, err
	}
	dir := path.Dir(name)
	if err := f.rt.MkdirAll(dir, 0o750); err != nil {
		return 0, err
	}
	tmpName := path.Join(dir, ".tmp-"+path.Base(name)+"-"+strconv.FormatUint(mrand.Uint64(), 36))
	tmp, err := f.rt.OpenFile(tmpName, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(tmp, ctxReader{ctx, r})
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = f.rt.Rename(tmpName, name)
	}
	if err != nil {
		_ = f.rt.Remove(tmpName)
		return n, err
	}
	return n, f.syncDir(dir)
}

// Create writes a temporary file as Put does, then hard-links it under name: link(2) fails
// when name exists, so the create is exclusive like O_EXCL, and unlike an O_EXCL create of name
// itself no reader ever sees the object half written.
func (f *FS) Create(ctx context.Context, name string, r io.Reader) (int64, error) {
	n, err := f.create(ctx, name, r)
	if errors.Is(err, fs.ErrExist) {
		err = ErrExists
	}
	if err != nil {
		return n, fmt.Errorf("create %s in %s: %w", name, f, err)
	}
	return n, nil
}

func (f *FS) create(ctx context.Context, name string, r io.Reader) (int64, error) {
	if err := CheckName(name); err != nil {
		return 0, err
	}
	dir := path.Dir(name)
	if err := f.rt.MkdirAll(dir, 0o750); err != nil {
		return 0, err
	}
	if _, err := f.rt.Lstat(name); err == nil {
		return 0, fs.ErrExist // spare writing the whole stream to learn it
	}
	tmpName := path.Join(dir, ".tmp-"+path.Base(name)+"-"+strconv.FormatUint(mrand.Uint64(), 36))
	tmp, err := f.rt.OpenFile(tmpName, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return 0, err
	}
	defer f.rt.Remove(tmpName) // the link, if made, keeps the data
	n, err := io.Copy(tmp, ctxReader{ctx, r})
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, err
	}
	if err := f.rt.Link(tmpName, name); err != nil {
		return n, err
	}
	return n, f.syncDir(dir)
}

func (f *FS) syncDir(dir string) error {
	d, err := f.rt.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

func (f *FS) Get(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	if err := CheckName(name); err != nil {
		return nil, fmt.Errorf("get from %s: %w", f, err)
	}
	file, err := f.rt.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("get %s from %s: %w", name, f, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get %s from %s: %w", name, f, err)
	}
	if off > 0 {
		if _, err := file.Seek(off, io.SeekStart); err != nil {
			file.Close()
			return nil, fmt.Errorf("get %s from %s: %w", name, f, err)
		}
	}
	if length < 0 {
		return file, nil
	}
	return struct {
		io.Reader
		io.Closer
	}{io.LimitReader(file, length), file}, nil
}

func (f *FS) Stat(_ context.Context, name string) (ObjectInfo, error) {
	if err := CheckName(name); err != nil {
		return ObjectInfo{}, fmt.Errorf("stat in %s: %w", f, err)
	}
	fi, err := f.rt.Stat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return ObjectInfo{}, fmt.Errorf("stat %s in %s: %w", name, f, ErrNotFound)
	}
	if err != nil {
		return ObjectInfo{}, fmt.Errorf("stat %s in %s: %w", name, f, err)
	}
	return ObjectInfo{Name: name, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// List walks the directory; temporary files of interrupted puts are not objects.
func (f *FS) List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error {
	dir := "."
	if prefix != "" {
		if err := CheckName(strings.TrimSuffix(prefix, "/")); err != nil {
			return fmt.Errorf("list in %s: %w", f, err)
		}
		dir = path.Dir(prefix + "x") // "data/" walks data, "snapshots/2026" walks snapshots
	}
	err := fs.WalkDir(f.rt.FS(), dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		// Only regular files are objects: a symlink is not something the repository wrote.
		if !d.Type().IsRegular() || strings.HasPrefix(d.Name(), ".tmp-") || !strings.HasPrefix(p, prefix) {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil // removed while listing
		}
		return fn(ObjectInfo{Name: p, Size: fi.Size(), ModTime: fi.ModTime()})
	})
	if err != nil {
		return fmt.Errorf("list %q in %s: %w", prefix, f, err)
	}
	return nil
}

func (f *FS) Delete(_ context.Context, name string) error {
	if err := CheckName(name); err != nil {
		return fmt.Errorf("delete from %s: %w", f, err)
	}
	if err := f.rt.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete %s from %s: %w", name, f, err)
	}
	return nil
}

// Lock holds locks/<name> as a sequence of generations, files locks/<name>/g<N> created
// exclusively; the newest generation is the lock. Its holder renews it by touching its own open
// file (never by name, so it cannot refresh a successor's), and releases it by dating it back.
// A contender takes over a generation that was not renewed for its ttl (or whose holder is a dead
// process on this host) by creating generation N+1: exactly one contender can create it. Every
// transition only creates a file, so no contender can remove or replace another's lock.
func (f *FS) Lock(_ context.Context, name string, ttl time.Duration) (Lock, error) {
	dir := "locks/" + name
	if err := CheckName(dir); err != nil {
		return nil, fmt.Errorf("lock in %s: %w", f, err)
	}
	if err := f.clearLegacyLock(dir, ttl); err != nil {
		return nil, fmt.Errorf("lock %s in %s: %w", name, f, err)
	}
	if err := f.rt.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("lock %s in %s: %w", name, f, err)
	}
	var holder Holder
	for attempt := 0; attempt < 3; attempt++ {
		gens, err := f.generations(dir)
		if err != nil {
			return nil, fmt.Errorf("lock %s in %s: %w", name, f, err)
		}
		next, prev := uint64(1), ""
		if len(gens) > 0 {
			top := gens[len(gens)-1]
			prev = genName(dir, top)
			fi, err := f.rt.Stat(prev)
			if errors.Is(err, fs.ErrNotExist) {
				continue // collected by a newer holder meanwhile: look again
			}
			if err != nil {
				return nil, fmt.Errorf("lock %s in %s: %w", name, f, err)
			}
			holder = f.readHolder(prev)
			if !stale(holder, fi, ttl) {
				break
			}
			next = top + 1
		}
		acquired := time.Now()
		file, err := f.rt.OpenFile(genName(dir, next), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
		if errors.Is(err, fs.ErrExist) {
			continue // another contender took this generation
		}
		if err != nil {
			return nil, fmt.Errorf("lock %s in %s: %w", name, f, err)
		}
		mine := genName(dir, next)
		ok, err := f.claimGeneration(file, dir, next, prev, name, ttl)
		if err != nil || !ok {
			file.Close()
			_ = f.rt.Remove(mine)
			if err != nil {
				return nil, fmt.Errorf("lock %s in %s: %w", name, f, err)
			}
			continue
		}
		for _, g := range gens {
			if g < next {
				_ = f.rt.Remove(genName(dir, g))
			}
		}
		renew := func(context.Context) error {
			if err := touch(file, time.Now()); err != nil {
				return fmt.Errorf("renew lock %s in %s: %w", name, f, err)
			}
			newer, err := f.newerThan(dir, next)
			if err != nil {
				return fmt.Errorf("renew lock %s in %s: %w", name, f, err)
			}
			if newer {
				return errLeaseTaken
			}
			return nil
		}
		release := func(context.Context) error {
			// Dating our own generation back frees it; a successor's generation is untouched.
			err := touch(file, time.Unix(0, 0))
			if cerr := file.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("release lock %s in %s: %w", name, f, err)
			}
			return nil
		}
		return startLease(ttl, acquired, renew, release), nil
	}
	return nil, fmt.Errorf("lock %s in %s: %w by %s", name, f, ErrLocked, describeHolder(holder))
}

// claimGeneration writes the holder into a freshly created generation and confirms it is the
// lock: no newer generation appeared, and the generation taken over (if any) is still stale, i.e.
// its holder did not renew between our look and our create.
func (f *FS) claimGeneration(file *os.File, dir string, gen uint64, prev, what string, ttl time.Duration) (bool, error) {
	h := currentHolder(what)
	h.TTLMillis = ttl.Milliseconds()
	b, _ := json.Marshal(h)
	if _, err := file.Write(b); err != nil {
		return false, err
	}
	if err := file.Sync(); err != nil {
		return false, err
	}
	if newer, err := f.newerThan(dir, gen); err != nil || newer {
		return false, err
	}
	if prev != "" {
		fi, err := f.rt.Stat(prev)
		if err == nil && !stale(f.readHolder(prev), fi, ttl) {
			return false, nil
		}
	}
	return true, nil
}

func genName(dir string, gen uint64) string { return fmt.Sprintf("%s/g%020d", dir, gen) }

// generations lists a lock's generation numbers, ascending.
func (f *FS) generations(dir string) ([]uint64, error) {
	entries, err := fs.ReadDir(f.rt.FS(), dir)
	if err != nil {
		return nil, err
	}
	var gens []uint64
	for _, e := range entries {
		if n, err := strconv.ParseUint(strings.TrimPrefix(e.Name(), "g"), 10, 64); err == nil && strings.HasPrefix(e.Name(), "g") {
			gens = append(gens, n)
		}
	}
	slices.Sort(gens)
	return gens, nil
}

func (f *FS) newerThan(dir string, gen uint64) (bool, error) {
	gens, err := f.generations(dir)
	return len(gens) > 0 && gens[len(gens)-1] > gen, err
}

// clearLegacyLock handles a lock file written by an earlier version (locks/<name> a plain file):
// a live one still excludes us, a stale one is removed.
func (f *FS) clearLegacyLock(p string, ttl time.Duration) error {
	fi, err := f.rt.Lstat(p)
	if err != nil || !fi.Mode().IsRegular() {
		return nil
	}
	h := f.readHolder(p)
	if !stale(h, fi, ttl) {
		return fmt.Errorf("%w by %s", ErrLocked, describeHolder(h))
	}
	if err := f.rt.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// stale reports whether a lock's holder stopped renewing it within its ttl, or is a dead process
// on this host.
func stale(h Holder, fi fs.FileInfo, ttl time.Duration) bool {
	if h.TTLMillis > 0 {
		ttl = time.Duration(h.TTLMillis) * time.Millisecond
	}
	if time.Since(fi.ModTime()) > ttl {
		return true
	}
	host, _ := os.Hostname()
	return h.Host == host && h.PID > 0 && syscall.Kill(h.PID, 0) == syscall.ESRCH
}

// touch sets an open file's times: through the descriptor, so only that very file changes.
func touch(file *os.File, t time.Time) error {
	tv := syscall.NsecToTimeval(t.UnixNano())
	return syscall.Futimes(int(file.Fd()), []syscall.Timeval{tv, tv})
}

func (f *FS) readHolder(p string) Holder {
	var h Holder
	if b, err := f.rt.ReadFile(p); err == nil {
		_ = json.Unmarshal(b, &h)
	}
	return h
}

func currentHolder(what string) Holder {
	host, _ := os.Hostname()
	return Holder{Host: host, PID: os.Getpid(), Since: time.Now().UTC(), What: what}
}

func describeHolder(h Holder) string {
	if h.Host == "" {
		return "an unknown holder"
	}
	return fmt.Sprintf("%s pid %d since %s", h.Host, h.PID, h.Since.Format(time.RFC3339))
}

// ctxReader makes a long copy stop when its context is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
