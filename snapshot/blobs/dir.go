package blobs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/tracevault/tracevault/snapshot/store"
)

// dir is a directory of files, one per blob, named by their slash-separated relative paths. It
// reads and writes through the store's filesystem backend (confined to the directory, atomic
// writes), and lists on its own: in name order, which a plain directory walk is not ("a/b" is
// walked before "a-c").
type dir struct {
	fs   *store.FS
	root *os.Root
	path string
}

func openDir(p string, create bool) (*dir, error) {
	if _, err := os.Stat(p); err != nil && (!create || !errors.Is(err, fs.ErrNotExist)) {
		return nil, fmt.Errorf("blob directory %s: %w", p, err)
	}
	f, err := store.NewFS(p)
	if err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(p)
	if err != nil {
		return nil, fmt.Errorf("open blob directory %s: %w", p, err)
	}
	return &dir{fs: f, root: root, path: p}, nil
}

func (d *dir) String() string { return "file://" + d.path }

func (d *dir) List(ctx context.Context, fn func(Entry) error) error {
	if err := d.walk(ctx, ".", fn); err != nil {
		return fmt.Errorf("list %s: %w", d, err)
	}
	return nil
}

// walk visits a directory's entries sorted by the names they give their files: a subdirectory
// sorts as "name/", so every path comes out in string order. A directory must be read whole to be
// sorted, but only its sort keys are kept (a string each, about 32 bytes for an event's name, not
// a DirEntry of about 100): a directory of 10^6 files costs ~32 MB while it is walked, and each
// file's details are read as it is visited.
func (d *dir) walk(ctx context.Context, p string, fn func(Entry) error) error {
	keys, err := d.sortKeys(p)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if err := ctx.Err(); err != nil {
			return err
		}
		if sub, ok := strings.CutSuffix(k, "/"); ok {
			if err := d.walk(ctx, path.Join(p, sub), fn); err != nil {
				return err
			}
			continue
		}
		if strings.HasPrefix(k, ".tmp-") {
			continue
		}
		name := path.Join(p, k)
		fi, err := d.root.Lstat(name)
		if err != nil {
			continue // removed while listing
		}
		if fi.Mode().IsRegular() {
			if err := fn(fileEntry(name, fi)); err != nil {
				return err
			}
		}
	}
	return nil
}

// sortKeys reads directory p in batches and returns its entries' sort keys, in order.
func (d *dir) sortKeys(p string) ([]string, error) {
	f, err := d.root.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var keys []string
	for {
		ents, err := f.ReadDir(1024)
		for _, e := range ents {
			switch {
			case e.IsDir():
				keys = append(keys, e.Name()+"/")
			case e.Type().IsRegular():
				keys = append(keys, e.Name())
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	slices.Sort(keys)
	return keys, nil
}

// fileEntry describes a file; a file has no MD5 or ETag, so its modification time and size
// stand in for the ETag: either changes when the file is rewritten.
func fileEntry(name string, fi fs.FileInfo) Entry {
	return Entry{Name: name, Size: fi.Size(), Modified: fi.ModTime().UTC(),
		ETag: strconv.FormatInt(fi.ModTime().UnixNano(), 36) + "-" + strconv.FormatInt(fi.Size(), 36)}
}

func (d *dir) Open(ctx context.Context, name string) (io.ReadCloser, Entry, error) {
	rc, err := d.fs.Get(ctx, name, 0, -1)
	if err != nil {
		return nil, Entry{}, err
	}
	var e Entry
	if f, ok := rc.(*os.File); ok {
		if fi, err := f.Stat(); err == nil {
			e = fileEntry(name, fi)
		}
	}
	return rc, e, nil
}

func (d *dir) Put(ctx context.Context, name string, size int64, md5 []byte, r io.Reader) error {
	if err := d.unfit(name); err != nil {
		return err
	}
	_, err := d.fs.Put(ctx, name, checked(r, name, size, md5))
	return err
}

// unfit refuses a blob name that a directory cannot hold as a file of that name. Azure keeps
// "a/../b", "./a", "/a", "a//b" and "a/" as literal names, distinct from "b", "a" and "a/b"; as
// paths they would land on another blob's file or outside the directory (the filesystem
// backend's own rule). A ".tmp-" file is the directory's own write in progress, which its
// listing skips.
func (d *dir) unfit(name string) error {
	if store.CheckName(name) != nil || strings.HasPrefix(path.Base(name), ".tmp-") {
		return fmt.Errorf("blob %q cannot be a file of that name in %s: %w", name, d, errUnfitName)
	}
	return nil
}
