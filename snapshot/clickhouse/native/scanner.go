// Package native checks a ClickHouse Native-format stream as it passes through, without
// decoding its values: block by block it reads the header (columns, rows, each column's name and
// type) and skips each column's data by its type, counting rows. A stream that is not a
// sequence of well-formed blocks ending exactly at a block boundary is an error, which is how a
// server exception written after the 200 header is told from data: by the structure, never by
// what the data says.
package native

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"
)

const (
	bufSize      = 256 << 10
	maxHeaderLen = 64 << 10 // a column name or type
	headLen      = 1024     // of a block, kept to show a server's exception text
	maxCached    = 4096     // parsed types
	// lowCardKeysVersion is the only LowCardinality keys serialization a server writes.
	lowCardKeysVersion = 1
)

// Error is a stream that is not well-formed Native data.
type Error struct {
	Offset int64  // where the block that failed starts
	Block  int64  // its index, from 0
	Column string // the column being read, if any
	Type   string // its type
	// ServerText is what the server wrote where a block should start, when that is text: the
	// exception of a query that failed after its first block was sent.
	ServerText string
	Err        error
}

func (e *Error) Error() string {
	where := fmt.Sprintf("block %d at byte %d", e.Block, e.Offset)
	if e.Column != "" {
		where += fmt.Sprintf(", column %q", e.Column)
	}
	if e.Type != "" {
		where += " of type " + e.Type
	}
	if e.ServerText != "" {
		return fmt.Sprintf("%s: %s (%v)", where, e.ServerText, e.Err)
	}
	return fmt.Sprintf("%s: %v", where, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// ErrTruncated is a stream that ends inside a block.
var ErrTruncated = errors.New("stream ends inside a block")

// Reader passes a Native stream through, unchanged but for the column RowHash names; its Read
// returns an *Error instead of io.EOF when the stream was not well-formed. Memory is bounded
// whatever the data: values are skipped in the buffer, never materialised.
type Reader struct {
	pr     *io.PipeReader
	done   chan struct{}
	once   sync.Once
	newest *newest
	hashes *rowHashes
	counts
}

// counts are what a scan has checked so far.
type counts struct{ rows, blocks atomic.Int64 }

// NewReader starts checking r. Close the Reader when done, after closing r if a Read of r may
// block (a network body): the check runs in its own goroutine, which Close waits for.
func NewReader(r io.Reader, opts ...Option) *Reader {
	pr, pw := io.Pipe()
	// Bytes reach the consumer once parsed, before the scanner waits for more; the verdict comes
	// in place of EOF, after the last byte.
	s := &scanner{src: r, out: pw, buf: make([]byte, bufSize), types: map[string]*colType{}}
	for _, o := range opts {
		o(s)
	}
	nr := &Reader{pr: pr, done: make(chan struct{}), newest: s.newest, hashes: s.hashes}
	go func() {
		defer close(nr.done)
		err := s.scan(&nr.counts)
		if err == nil {
			err = s.flush()
		}
		pw.CloseWithError(err)
	}()
	return nr
}

func (r *Reader) Read(p []byte) (int, error) { return r.pr.Read(p) }

// Rows is the number of rows in the blocks checked so far; after Read returned io.EOF, the
// stream's total.
func (r *Reader) Rows() int64 { return r.rows.Load() }

// Newest is the largest value of the column Newest named, in the blocks checked so far (after
// io.EOF, in the stream): as text (RFC 3339 UTC for a time), "" if none, and as a time when the
// column holds times or dates.
func (r *Reader) Newest() (string, time.Time) { return r.newest.value() }

// Blocks is the number of blocks checked so far.
func (r *Reader) Blocks() int64 { return r.blocks.Load() }

// Close stops the check and waits for it to end.
func (r *Reader) Close() error {
	r.once.Do(func() {
		r.pr.CloseWithError(errors.New("native reader closed"))
		<-r.done
	})
	return nil
}

// Check reads a whole stream, returning its rows.
func Check(r io.Reader) (int64, error) {
	s := &scanner{src: r, buf: make([]byte, bufSize), types: map[string]*colType{}}
	var c counts
	err := s.scan(&c)
	return c.rows.Load(), err
}

// scanner is a buffered reader that knows the layout of Native blocks.
type scanner struct {
	src io.Reader
	// out, when set, receives the stream as it is parsed: buf[sent:r] is parsed and not yet
	// written, unless drop is set, when it is left out (the row hash column).
	out   io.Writer
	sent  int
	drop  bool
	buf   []byte
	r, w  int
	off   int64 // stream offset of buf[0]
	err   error // of src, once it failed or ended
	types map[string]*colType
	col   string // the column being read, and its type, for errors
	typ   string
	// newest, when set, keeps the largest value of one column (Newest).
	newest *newest
	// hashes, when set, takes each block's last column out of the stream and sums it (RowHash).
	hashes *rowHashes
}

func (s *scanner) scan(out *counts) error {
	for block := int64(0); ; block++ {
		start := s.off + int64(s.r)
		s.fill(headLen)
		if s.r == s.w {
			if s.err == io.EOF {
				return nil // the end, at a block boundary
			}
			return &Error{Offset: start, Block: block, Err: s.err}
		}
		head := append([]byte(nil), s.buf[s.r:min(s.w, s.r+headLen)]...)
		s.col, s.typ = "", ""
		rows, err := s.block()
		if err != nil {
			// Only the scanner's own end-of-data: a source's error that wraps it (a network
			// body cut off) keeps its identity, which says the stream may be read again.
			if err == io.ErrUnexpectedEOF {
				err = ErrTruncated
			}
			e := &Error{Offset: start, Block: block, Column: s.col, Type: s.typ, Err: err}
			if txt, ok := serverText(head); ok {
				e.ServerText, e.Column, e.Type = txt, "", ""
			}
			return e
		}
		out.rows.Add(int64(rows))
		out.blocks.Add(1)
	}
}

// Text returns b as text if it is printable UTF-8 (a server's message) and not bytes of data,
// trimmed and cut to max runes. A rune cut at the end of b is dropped.
func Text(b []byte, max int) (string, bool) {
	n := 0
	for i, r := range string(b) {
		if r == utf8.RuneError || (!unicode.IsPrint(r) && !unicode.IsSpace(r)) {
			if r == utf8.RuneError && i+utf8.UTFMax >= len(b) {
				break
			}
			return "", false
		}
		n = i + utf8.RuneLen(r)
	}
	txt := []rune(strings.TrimSpace(string(b[:n])))
	if len(txt) > max {
		txt = append(txt[:max], '…')
	}
	return string(txt), true
}

// serverText is the text at the start of a block that is not one: printable, as an exception
// message is, and never a binary block header (whose first bytes are small numbers).
func serverText(head []byte) (string, bool) {
	txt, ok := Text(head, 500)
	return txt, ok && len(txt) >= 8
}

func (s *scanner) block() (uint64, error) {
	// Buffered first, so that reading the count moves nothing: where it started stays known.
	s.fill(binary.MaxVarintLen64)
	start := s.r
	cols, err := s.uvarint()
	if err != nil {
		return 0, err
	}
	if s.hashes != nil {
		if err := s.dropHashColumnFromHeader(start, cols); err != nil {
			return 0, err
		}
	}
	rows, err := s.uvarint()
	if err != nil {
		return 0, err
	}
	for c := uint64(0); c < cols; c++ {
		if s.hashes != nil && c == cols-1 {
			return rows, s.sumHashColumn(rows)
		}
		name, err := s.str()
		if err != nil {
			return 0, err
		}
		s.col = name
		typeName, err := s.str()
		if err != nil {
			return 0, err
		}
		s.typ = typeName
		t, err := s.parsed(typeName)
		if err != nil {
			return 0, err
		}
		if rows == 0 {
			continue // an empty block has no data, not even LowCardinality's prefix
		}
		if err := s.prefix(t); err != nil {
			return 0, err
		}
		if s.newest != nil && name == s.newest.column {
			if vt, ok := parseVersionType(typeName); ok {
				if err := s.readNewest(vt, rows); err != nil {
					return 0, err
				}
				continue
			}
		}
		if err := s.skip(t, rows); err != nil {
			return 0, err
		}
	}
	return rows, nil
}

func (s *scanner) parsed(typeName string) (*colType, error) {
	if t, ok := s.types[typeName]; ok {
		return t, nil
	}
	t, err := parseType(typeName)
	if err != nil {
		return nil, err
	}
	if len(s.types) >= maxCached {
		clear(s.types)
	}
	s.types[typeName] = t
	return t, nil
}

// prefix reads what a type writes before any data: LowCardinality's keys version, for every
// LowCardinality in the type, depth first.
func (s *scanner) prefix(t *colType) error {
	if t.kind == kindLowCard {
		v, err := s.u64()
		if err != nil {
			return err
		}
		if v != lowCardKeysVersion {
			return fmt.Errorf("LowCardinality keys version %d, want %d", v, lowCardKeysVersion)
		}
		return nil
	}
	if t.kind == kindStateList || t.kind == kindUniqState {
		return nil
	}
	for _, e := range t.elems {
		if err := s.prefix(e); err != nil {
			return err
		}
	}
	return nil
}

// skip passes over n values of type t.
func (s *scanner) skip(t *colType, n uint64) error {
	if n == 0 {
		return nil
	}
	switch t.kind {
	case kindFixed:
		return s.skipN(n, t.size)
	case kindString:
		return s.skipStrings(n)
	case kindNullable:
		if err := s.skipN(n, 1); err != nil {
			return err
		}
		return s.skip(t.elems[0], n)
	case kindArray, kindMap:
		count, err := s.lastOffset(n)
		if err != nil {
			return err
		}
		if t.kind == kindArray {
			return s.skip(t.elems[0], count)
		}
		if err := s.skip(t.elems[0], count); err != nil {
			return err
		}
		return s.skip(t.elems[1], count)
	case kindTuple:
		for _, e := range t.elems {
			if err := s.skip(e, n); err != nil {
				return err
			}
		}
		return nil
	case kindLowCard:
		return s.skipLowCard(t, n)
	case kindUniqState:
		for i := uint64(0); i < n; i++ {
			if err := s.skipN(1, 1); err != nil { // skip degree
				return err
			}
			k, err := s.uvarint()
			if err != nil {
				return err
			}
			if k > uniqMaxSize {
				return fmt.Errorf("uniq state of %d hashes, more than a UniquesHashSet holds", k)
			}
			if err := s.skipN(k, 4); err != nil {
				return err
			}
		}
		return nil
	case kindStateList:
		for i := uint64(0); i < n; i++ {
			k, err := s.uvarint()
			if err != nil {
				return err
			}
			if err := s.skip(t.elems[0], k); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("internal: kind %d", t.kind)
}

// LowCardinality index type flags.
const (
	lcNeedGlobalDictionary = 1 << 8
	lcHasAdditionalKeys    = 1 << 9
	lcNeedUpdateDictionary = 1 << 10
)

// skipLowCard passes over granules until n rows are read. A granule is its index type (the
// index width in the low byte, flags above), a dictionary if flagged, additional keys if
// flagged (count, then the keys as the dictionary's type without Nullable), then the number of
// rows and their indexes.
func (s *scanner) skipLowCard(t *colType, n uint64) error {
	keys := t.elems[0]
	if keys.kind == kindNullable {
		keys = keys.elems[0]
	}
	haveDict := false
	for n > 0 {
		flags, err := s.u64()
		if err != nil {
			return err
		}
		width := flags &^ (lcNeedGlobalDictionary | lcHasAdditionalKeys | lcNeedUpdateDictionary)
		if width > 3 {
			return fmt.Errorf("LowCardinality index type %#x", flags)
		}
		if flags&lcNeedGlobalDictionary != 0 && (!haveDict || flags&lcNeedUpdateDictionary != 0) {
			if err := s.skipKeys(keys); err != nil {
				return err
			}
			haveDict = true
		}
		if flags&lcHasAdditionalKeys != 0 {
			if err := s.skipKeys(keys); err != nil {
				return err
			}
		}
		rows, err := s.u64()
		if err != nil {
			return err
		}
		if rows == 0 || rows > n {
			return fmt.Errorf("LowCardinality granule of %d rows where %d remain", rows, n)
		}
		if err := s.skipN(rows, 1<<width); err != nil {
			return err
		}
		n -= rows
	}
	return nil
}

func (s *scanner) skipKeys(keys *colType) error {
	k, err := s.u64()
	if err != nil {
		return err
	}
	return s.skip(keys, k)
}

// lastOffset skips an array column's n offsets and returns the last: how many nested values
// follow.
func (s *scanner) lastOffset(n uint64) (uint64, error) {
	if err := s.skipN(n-1, 8); err != nil {
		return 0, err
	}
	return s.u64()
}

// flush writes what was parsed since the last flush to out, or leaves it out while drop is set.
func (s *scanner) flush() error {
	if s.out != nil && !s.drop && s.r > s.sent {
		if _, err := s.out.Write(s.buf[s.sent:s.r]); err != nil {
			return err
		}
	}
	s.sent = s.r
	return nil
}

// fill tries to have k bytes buffered; fewer only at the end of src. What was parsed is
// flushed first, so that the consumer never waits on src for bytes already read.
func (s *scanner) fill(k int) {
	if s.w-s.r >= k || s.err != nil {
		return
	}
	if err := s.flush(); err != nil {
		s.err = err // the consumer is gone (the Reader was closed)
		return
	}
	if s.r > 0 {
		s.off += int64(s.r)
		s.w = copy(s.buf, s.buf[s.r:s.w])
		s.r, s.sent = 0, 0
	}
	for s.w < k && s.err == nil {
		n, err := s.src.Read(s.buf[s.w:])
		s.w += n
		if err != nil {
			s.err = err
		} else if n == 0 {
			s.err = io.ErrNoProgress
		}
	}
}

// need makes k bytes available at buf[r:], or fails.
func (s *scanner) need(k int) error {
	s.fill(k)
	if s.w-s.r >= k {
		return nil
	}
	if s.err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return s.err
}

func (s *scanner) u64() (uint64, error) {
	if err := s.need(8); err != nil {
		return 0, err
	}
	v := binary.LittleEndian.Uint64(s.buf[s.r:])
	s.r += 8
	return v, nil
}

func (s *scanner) uvarint() (uint64, error) {
	if s.w-s.r < binary.MaxVarintLen64 {
		s.fill(binary.MaxVarintLen64)
	}
	v, n := binary.Uvarint(s.buf[s.r:s.w])
	if n > 0 {
		s.r += n
		return v, nil
	}
	if n < 0 {
		return 0, errors.New("length overflows 64 bits")
	}
	if s.err == nil || s.err == io.EOF {
		return 0, io.ErrUnexpectedEOF
	}
	return 0, s.err
}

func (s *scanner) str() (string, error) {
	k, err := s.uvarint()
	if err != nil {
		return "", err
	}
	if k > maxHeaderLen {
		return "", fmt.Errorf("column name or type of %d bytes", k)
	}
	if err := s.need(int(k)); err != nil {
		return "", err
	}
	v := string(s.buf[s.r : s.r+int(k)])
	s.r += int(k)
	return v, nil
}

// skipN passes over n values of size bytes.
func (s *scanner) skipN(n, size uint64) error {
	hi, total := bits.Mul64(n, size)
	if hi != 0 || total > math.MaxInt64 {
		return fmt.Errorf("%d values of %d bytes overflow", n, size)
	}
	for total > 0 {
		if s.r == s.w {
			if err := s.need(1); err != nil {
				return err
			}
		}
		k := min(total, uint64(s.w-s.r))
		s.r += int(k)
		total -= k
	}
	return nil
}

// skipStrings passes over n length-prefixed strings, in the buffer while they fit.
func (s *scanner) skipStrings(n uint64) error {
	for n > 0 {
		// Fast path: whole strings inside the buffer.
		buf, r := s.buf[:s.w], s.r
		for n > 0 {
			if len(buf)-r >= binary.MaxVarintLen64 || (s.err != nil && r < len(buf)) {
				l, k := binary.Uvarint(buf[r:])
				if k > 0 && l <= uint64(len(buf)-r-k) {
					r += k + int(l)
					n--
					continue
				}
			}
			break
		}
		s.r = r
		if n == 0 {
			return nil
		}
		l, err := s.uvarint()
		if err != nil {
			return err
		}
		if err := s.skipN(l, 1); err != nil {
			return err
		}
		n--
	}
	return nil
}
