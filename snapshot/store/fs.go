package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// FS is the filesystem backend: a directory, the embedded default.
type FS struct {
	root string
}

// NewFS opens (and creates) a repository directory.
func NewFS(root string) (*FS, error) {
	if err := os.MkdirAll(root, 0o750); err != nil {
		return nil, fmt.Errorf("create repository directory %s: %w", root, err)
	}
	return &FS{root: root}, nil
}

func (f *FS) String() string { return "file://" + f.root }

func (f *FS) path(name string) string { return filepath.Join(f.root, filepath.FromSlash(name)) }

// Put writes to a temporary file in the target directory, syncs it and renames it into place,
// then syncs the directory, so a crash leaves either the old state or the whole object.
func (f *FS) Put(ctx context.Context, name string, r io.Reader) (int64, error) {
	dst := f.path(name)
	if err := os.MkdirAll(filepath.Dir(dst), 0o750); err != nil {
		return 0, fmt.Errorf("put %s to %s: %w", name, f, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".tmp-"+filepath.Base(dst)+"-*")
	if err != nil {
		return 0, fmt.Errorf("put %s to %s: %w", name, f, err)
	}
	n, err := io.Copy(tmp, ctxReader{ctx, r})
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), dst)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return n, fmt.Errorf("put %s to %s: %w", name, f, err)
	}
	return n, syncDir(filepath.Dir(dst))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
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
	file, err := os.Open(f.path(name))
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
	fi, err := os.Stat(f.path(name))
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
	dir := f.path(prefix)
	if !strings.HasSuffix(prefix, "/") && prefix != "" {
		dir = filepath.Dir(dir)
	}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() || strings.HasPrefix(d.Name(), ".tmp-") {
			return nil
		}
		rel, err := filepath.Rel(f.root, p)
		if err != nil {
			return err
		}
		name := filepath.ToSlash(rel)
		if !strings.HasPrefix(name, prefix) {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil // removed while listing
		}
		return fn(ObjectInfo{Name: name, Size: fi.Size(), ModTime: fi.ModTime()})
	})
	if err != nil {
		return fmt.Errorf("list %q in %s: %w", prefix, f, err)
	}
	return nil
}

func (f *FS) Delete(_ context.Context, name string) error {
	if err := os.Remove(f.path(name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete %s from %s: %w", name, f, err)
	}
	return nil
}

// Lock creates locks/<name> exclusively and touches it every ttl/3. A lock file not touched for
// a ttl belongs to a dead holder and is taken over.
func (f *FS) Lock(_ context.Context, name string, ttl time.Duration) (Lock, error) {
	p := f.path("locks/" + name)
	if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
		return nil, fmt.Errorf("lock %s in %s: %w", name, f, err)
	}
	holder, _ := json.Marshal(currentHolder(name))
	for attempt := 0; attempt < 2; attempt++ {
		file, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
		if err == nil {
			_, werr := file.Write(holder)
			if cerr := file.Close(); werr == nil {
				werr = cerr
			}
			if werr != nil {
				os.Remove(p)
				return nil, fmt.Errorf("lock %s in %s: %w", name, f, werr)
			}
			renew := func(context.Context) error { now := time.Now(); return os.Chtimes(p, now, now) }
			release := func(context.Context) error { return f.Delete(context.Background(), "locks/"+name) }
			return startLease(ttl, renew, release), nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("lock %s in %s: %w", name, f, err)
		}
		if !f.staleLock(p, ttl) {
			break
		}
		os.Remove(p)
	}
	return nil, fmt.Errorf("lock %s in %s: %w by %s", name, f, ErrLocked, describeHolder(readHolder(p)))
}

// staleLock reports whether a lock's holder stopped renewing it, or is a dead process here.
func (f *FS) staleLock(p string, ttl time.Duration) bool {
	fi, err := os.Stat(p)
	if err != nil {
		return errors.Is(err, fs.ErrNotExist)
	}
	if time.Since(fi.ModTime()) > ttl {
		return true
	}
	h := readHolder(p)
	host, _ := os.Hostname()
	return h.Host == host && h.PID > 0 && syscall.Kill(h.PID, 0) == syscall.ESRCH
}

func readHolder(p string) Holder {
	var h Holder
	if b, err := os.ReadFile(p); err == nil {
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
