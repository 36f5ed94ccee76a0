package blobs

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"

	"github.com/klauspost/compress/zstd"

	"github.com/tracevault/tracevault/internal/tempfile"
)

// spool is a sequence of strings kept in an unlinked, compressed temporary file: the file log's
// paths, read whole before a listing that may take an hour, in constant memory. A crash leaves
// nothing behind.
type spool struct{ f *os.File }

// maxSpooled bounds one spooled path; a file log path longer than any blob name matches none.
const maxSpooled = 64 << 10

func spoolPaths(paths iter.Seq2[string, error]) (*spool, error) {
	f, err := tempfile.Unlinked("the file log's paths")
	if err != nil {
		return nil, err // it names the file log already
	}
	sp := &spool{f: f}
	if err := sp.fill(paths); err != nil {
		sp.Close()
		return nil, err
	}
	return sp, nil
}

func (sp *spool) fill(paths iter.Seq2[string, error]) error {
	zw, err := zstd.NewWriter(sp.f, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithWindowSize(1<<20), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(zw)
	var n [binary.MaxVarintLen64]byte
	for p, err := range paths {
		if err != nil {
			zw.Close()
			return err
		}
		if len(p) > maxSpooled {
			p = p[:maxSpooled]
		}
		bw.Write(n[:binary.PutUvarint(n[:], uint64(len(p)))])
		bw.WriteString(p)
	}
	if err := bw.Flush(); err != nil {
		zw.Close()
		return fmt.Errorf("spool the file log: %w", err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("spool the file log: %w", err)
	}
	if _, err := sp.f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("spool the file log: %w", err)
	}
	return nil
}

// paths reads the spool back, once.
func (sp *spool) paths() iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		zr, err := zstd.NewReader(sp.f, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
		if err != nil {
			yield("", err)
			return
		}
		defer zr.Close()
		br := bufio.NewReader(zr)
		buf := make([]byte, 0, 256)
		for {
			n, err := binary.ReadUvarint(br)
			if errors.Is(err, io.EOF) {
				return
			}
			if err == nil && n > maxSpooled {
				err = fmt.Errorf("a path of %d bytes", n)
			}
			if err == nil {
				if uint64(cap(buf)) < n {
					buf = make([]byte, n)
				}
				buf = buf[:n]
				_, err = io.ReadFull(br, buf)
			}
			if err != nil {
				yield("", fmt.Errorf("read the spooled file log: %w", err))
				return
			}
			if !yield(string(buf), nil) {
				return
			}
		}
	}
}

func (sp *spool) Close() { sp.f.Close() }
