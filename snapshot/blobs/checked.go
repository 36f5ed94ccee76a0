package blobs

import (
	"bytes"
	"crypto/md5"
	"fmt"
	"hash"
	"io"
)

// checked passes r through and, at its end, replaces EOF with an error unless exactly size bytes
// hashing to want went by: a writer that commits only on EOF never commits a damaged blob.
func checked(r io.Reader, name string, size int64, want []byte) io.Reader {
	return &md5Check{r: r, h: md5.New(), name: name, size: size, want: want}
}

type md5Check struct {
	r    io.Reader
	h    hash.Hash
	n    int64
	name string
	size int64
	want []byte
}

func (c *md5Check) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.h.Write(p[:n])
	c.n += int64(n)
	if err == io.EOF { // a failure that wraps io.EOF is no end (see store.UploadSource)
		if got := c.h.Sum(nil); c.n != c.size || !bytes.Equal(got, c.want) {
			return n, fmt.Errorf("blob %s: %w: %d bytes with md5 %x, the snapshot says %d bytes with md5 %x", c.name, ErrChanged, c.n, got, c.size, c.want)
		}
	}
	return n, err
}
