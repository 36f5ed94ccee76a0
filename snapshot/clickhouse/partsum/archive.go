package partsum

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"

	"github.com/go-faster/city"
)

// hashBlock is DBMS_DEFAULT_HASHING_BLOCK_SIZE: the server hashes a file in 2 KiB blocks, each
// CityHash128WithSeed seeded with the hash so far, the last (short) block included.
const hashBlock = 2048

// Hasher computes a file's hash the way the server's HashingWriteBuffer does.
type Hasher struct {
	buf   [hashBlock]byte
	n     int
	state city.U128
	size  uint64
}

// Write adds p to the hash.
func (h *Hasher) Write(p []byte) (int, error) {
	written := len(p)
	h.size += uint64(len(p))
	for len(p) > 0 {
		if h.n == 0 && len(p) >= hashBlock {
			h.state = city.CH128Seed(p[:hashBlock], h.state)
			p = p[hashBlock:]
			continue
		}
		c := copy(h.buf[h.n:], p)
		h.n += c
		p = p[c:]
		if h.n == hashBlock {
			h.state = city.CH128Seed(h.buf[:], h.state)
			h.n = 0
		}
	}
	return written, nil
}

// Sum returns the hash of everything written; the zero hash for an empty file.
func (h *Hasher) Sum() city.U128 {
	if h.n > 0 {
		return city.CH128Seed(h.buf[:h.n], h.state)
	}
	return h.state
}

// Size is the number of bytes written.
func (h *Hasher) Size() uint64 { return h.size }

// maxProblems bounds what one archive reports: the first few bad files name the damage.
const maxProblems = 10

// Archive checks the part directories of a parts archive as its files stream by: each file is
// hashed as it is read, each directory's checksums.txt is parsed, and when the archive moves on
// to the next part the finished one is compared. Memory holds one part's file list, whatever
// the size of its data. Parts must be contiguous in the archive, as the tar writer makes them.
type Archive struct {
	part     string          // the top-level part being read
	dirs     map[string]*dir // its directories: the part and its projections
	done     map[string]bool // finished parts
	problems []string
	more     int
}

type dir struct {
	files     map[string]fileSum
	checksums Checksums
	parseErr  error
	seen      bool // a checksums.txt was read
}

type fileSum struct {
	size uint64
	hash city.U128
}

// File returns where to write one regular file of the archive (name as in the tar) as it
// streams by; Close records its size and hash, or parses it if it is a checksums.txt. What the
// file holds is judged by Finish.
func (a *Archive) File(name string) io.WriteCloser {
	d, base, err := a.enter(name)
	if err != nil {
		a.problem("%v", err)
		return discard{}
	}
	if base == FileName {
		return &checksumsWriter{d: d}
	}
	return &fileWriter{d: d, base: base}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
func (discard) Close() error                { return nil }

type fileWriter struct {
	Hasher
	d    *dir
	base string
}

func (w *fileWriter) Close() error {
	w.d.files[w.base] = fileSum{size: w.Size(), hash: w.Sum()}
	return nil
}

// checksumsWriter keeps a checksums.txt whole (bounded) to parse it: it lists the others.
type checksumsWriter struct {
	d    *dir
	data []byte
	over bool
}

func (w *checksumsWriter) Write(p []byte) (int, error) {
	if len(w.data)+len(p) > MaxSize {
		w.over = true
	} else {
		w.data = append(w.data, p...)
	}
	return len(p), nil
}

func (w *checksumsWriter) Close() error {
	w.d.seen = true
	if w.over {
		w.d.parseErr = fmt.Errorf("checksums.txt is more than the %d bytes a server writes", MaxSize)
		return nil
	}
	w.d.checksums, w.d.parseErr = Parse(w.data)
	return nil
}

// enter returns the directory a file belongs to, finishing the previous part when a new one
// starts.
func (a *Archive) enter(name string) (*dir, string, error) {
	clean := path.Clean(strings.TrimPrefix(name, "./"))
	part, _, _ := strings.Cut(clean, "/")
	dirName, base := path.Split(clean)
	dirName = strings.TrimSuffix(dirName, "/")
	if dirName == "" || part == ".." || strings.HasPrefix(clean, "/") {
		return nil, "", fmt.Errorf("archive entry %q is not a file inside a part directory", name)
	}
	if part != a.part {
		a.finish()
		if a.done[part] {
			return nil, "", fmt.Errorf("part %s: its files are not together in the archive (entry %q)", part, name)
		}
		a.part = part
	}
	if a.dirs == nil {
		a.dirs = map[string]*dir{}
	}
	d := a.dirs[dirName]
	if d == nil {
		d = &dir{files: map[string]fileSum{}}
		a.dirs[dirName] = d
	}
	return d, base, nil
}

// finish compares the part just read with its checksums.txt, and its projections with theirs.
func (a *Archive) finish() {
	if a.part == "" {
		return
	}
	if a.done == nil {
		a.done = map[string]bool{}
	}
	a.done[a.part] = true
	names := make([]string, 0, len(a.dirs))
	for n := range a.dirs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		a.compare(n, a.dirs[n])
	}
	a.part, a.dirs = "", nil
}

func (a *Archive) compare(name string, d *dir) {
	switch {
	case !d.seen:
		a.problem("part %s: no %s in the archive, so its files cannot be checked", name, FileName)
		return
	case d.parseErr != nil:
		a.problem("part %s: %v", name, d.parseErr)
		return
	}
	files := make([]string, 0, len(d.checksums))
	for f := range d.checksums {
		files = append(files, f)
	}
	sort.Strings(files)
	for _, f := range files {
		want := d.checksums[f]
		if strings.HasSuffix(f, ".proj") {
			// A projection's entry sums its own checksums.txt, which its directory is checked against.
			if _, ok := a.dirs[name+"/"+f]; !ok {
				a.problem("part %s: projection %s listed in %s is missing from the archive", name, f, FileName)
			}
			continue
		}
		got, ok := d.files[f]
		switch {
		case !ok:
			a.problem("part %s: file %s listed in %s is missing from the archive", name, f, FileName)
		case got.size != want.Size:
			a.problem("part %s: file %s is %d bytes, %s says %d", name, f, got.size, FileName, want.Size)
		case got.hash != want.Hash:
			a.problem("part %s: file %s has CityHash128 %s, %s says %s", name, f, Hex(got.hash), FileName, Hex(want.Hash))
		}
	}
}

func (a *Archive) problem(format string, args ...any) {
	if len(a.problems) == maxProblems {
		a.more++
		return
	}
	a.problems = append(a.problems, fmt.Sprintf(format, args...))
}

// Finish compares the last part and returns every problem found, or nil when each part's files
// match its checksums.txt.
func (a *Archive) Finish() error {
	a.finish()
	if len(a.problems) == 0 {
		return nil
	}
	msg := strings.Join(a.problems, "; ")
	if a.more > 0 {
		msg += fmt.Sprintf("; and %d more", a.more)
	}
	return errors.New(msg)
}

// CheckTar reads a parts archive (a tar of part directories) and checks every part against its
// checksums.txt. It stops at the tar's end-of-archive blocks; the caller drains what follows.
// A read error is returned as such; damage the checksums reveal is returned after the whole
// archive was read, naming each bad part and file.
func CheckTar(ctx context.Context, r io.Reader) error {
	var a Archive
	tr := tar.NewReader(r)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read parts archive: %w", err)
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			continue
		case tar.TypeReg:
			for k := range hdr.PAXRecords {
				// A sparse file's holes read as zeros: a small object could make hours of hashing.
				// The writer never makes one.
				if strings.HasPrefix(k, "GNU.sparse.") {
					return fmt.Errorf("parts archive entry %q is a sparse file", hdr.Name)
				}
			}
			w := a.File(hdr.Name)
			if _, err := io.Copy(w, tr); err != nil {
				return fmt.Errorf("read parts archive entry %s: %w", hdr.Name, err)
			}
			_ = w.Close() // records; never fails
		default:
			return fmt.Errorf("parts archive entry %q is not a file or directory", hdr.Name)
		}
	}
	// An empty archive is a partition whose parts were all merged away before the freeze.
	return a.Finish()
}
