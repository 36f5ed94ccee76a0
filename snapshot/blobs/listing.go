package blobs

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// The listing is the container as one snapshot saw it: one record per blob, sorted by name, one
// line each, stored as one repository object (which the codec compresses and encrypts). A line is
//
//	name TAB size TAB md5 TAB etag TAB modified TAB pack TAB offset
//
// name and etag percent-escape '%', control characters and DEL, so a line never holds a tab or
// newline of its own; md5 is 32 lowercase hex digits (of the content, computed or checked by the
// backup); modified is Unix nanoseconds; pack is the 32-hex key of the pack object holding the
// content at offset, or "-" for an empty blob. A 1,000,000-blob container is a ~100 MB listing
// streamed through a small buffer, never an in-memory array.
const listingHeader = "tracevault-blob-listing v1"

// maxLine bounds one record: Azure names are at most 1024 characters, 3 bytes each once escaped.
const maxLine = 16 << 10

var packKeyForm = regexp.MustCompile(`^[0-9a-f]{32}$`)

// Record is one blob of a listing.
type Record struct {
	Name     string
	Size     int64
	MD5      [16]byte
	ETag     string
	Modified time.Time
	Pack     string // pack key; "" for an empty blob
	Offset   int64
}

// noPack marks an empty blob's pack field.
const noPack = "-"

// ListingWriter writes records in strictly increasing name order.
type ListingWriter struct {
	w    *bufio.Writer
	last string
	n    int64
}

// NewListingWriter starts a listing on w.
func NewListingWriter(w io.Writer) (*ListingWriter, error) {
	bw := bufio.NewWriterSize(w, 64<<10)
	if _, err := bw.WriteString(listingHeader + "\n"); err != nil {
		return nil, err
	}
	return &ListingWriter{w: bw}, nil
}

// Write appends r; a name not after the previous one is refused, since restore and the next
// backup merge listings by name.
func (lw *ListingWriter) Write(r Record) error {
	if err := r.validate(); err != nil {
		return err
	}
	if lw.n > 0 && r.Name <= lw.last {
		return fmt.Errorf("listing: blob %q comes after %q: names must be strictly increasing", r.Name, lw.last)
	}
	pack := r.Pack
	if pack == "" {
		pack = noPack
	}
	var line []byte
	line = appendEscaped(line, r.Name)
	line = append(line, '\t')
	line = strconv.AppendInt(line, r.Size, 10)
	line = append(line, '\t')
	line = hex.AppendEncode(line, r.MD5[:])
	line = append(line, '\t')
	line = appendEscaped(line, r.ETag)
	line = append(line, '\t')
	line = strconv.AppendInt(line, r.Modified.UnixNano(), 10)
	line = append(line, '\t')
	line = append(line, pack...)
	line = append(line, '\t')
	line = strconv.AppendInt(line, r.Offset, 10)
	line = append(line, '\n')
	if _, err := lw.w.Write(line); err != nil {
		return err
	}
	lw.last, lw.n = r.Name, lw.n+1
	return nil
}

// Close flushes the listing; it does not close the underlying writer.
func (lw *ListingWriter) Close() error { return lw.w.Flush() }

// validate checks what a record must hold whoever wrote it.
func (r Record) validate() error {
	switch {
	case r.Name == "" || !utf8.ValidString(r.Name):
		return fmt.Errorf("listing: blob name %q is empty or not UTF-8", r.Name)
	case len(r.Name) > 4096:
		return fmt.Errorf("listing: blob name of %d bytes is longer than any container allows", len(r.Name))
	case r.Size < 0 || r.Offset < 0:
		return fmt.Errorf("listing: blob %q: size %d and offset %d must not be negative", r.Name, r.Size, r.Offset)
	case r.Size > 0 && !packKeyForm.MatchString(r.Pack):
		return fmt.Errorf("listing: blob %q: pack %q is not a pack key (32 lowercase hex digits)", r.Name, r.Pack)
	case r.Size == 0 && (r.Pack != "" || r.Offset != 0):
		return fmt.Errorf("listing: empty blob %q names pack %q offset %d", r.Name, r.Pack, r.Offset)
	case r.Offset > 1<<62-r.Size:
		return fmt.Errorf("listing: blob %q: offset %d + size %d overflows", r.Name, r.Offset, r.Size)
	}
	return nil
}

// ListingReader parses a listing. Storage is a trust boundary: every field is checked as the
// writer produces it, names must increase strictly, and a line longer than any record is refused
// rather than buffered.
type ListingReader struct {
	s    *bufio.Scanner
	line int
	last string
	err  error
}

// NewListingReader reads the header and returns a reader of the records.
func NewListingReader(r io.Reader) (*ListingReader, error) {
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 0, 4096), maxLine)
	if !s.Scan() {
		if err := s.Err(); err != nil {
			return nil, fmt.Errorf("read blob listing: %w", err)
		}
		return nil, errors.New("read blob listing: it is empty, not even a header")
	}
	if s.Text() != listingHeader {
		return nil, fmt.Errorf("read blob listing: header %.60q is not %q: not a listing, or written by a newer tracevault", s.Text(), listingHeader)
	}
	return &ListingReader{s: s, line: 1}, nil
}

// Next returns the next record; io.EOF at the end.
func (lr *ListingReader) Next() (Record, error) {
	if lr.err != nil {
		return Record{}, lr.err
	}
	if !lr.s.Scan() {
		lr.err = io.EOF
		if err := lr.s.Err(); err != nil {
			lr.err = fmt.Errorf("read blob listing line %d: %w", lr.line+1, err)
		}
		return Record{}, lr.err
	}
	lr.line++
	r, err := parseRecord(lr.s.Text())
	if err == nil && lr.line > 2 && r.Name <= lr.last {
		err = fmt.Errorf("blob %q comes after %q: names must be strictly increasing", r.Name, lr.last)
	}
	if err != nil {
		lr.err = fmt.Errorf("read blob listing line %d: %w", lr.line, err)
		return Record{}, lr.err
	}
	lr.last = r.Name
	return r, nil
}

func parseRecord(line string) (Record, error) {
	f := strings.Split(line, "\t")
	if len(f) != 7 {
		return Record{}, fmt.Errorf("%d fields, want 7", len(f))
	}
	var r Record
	var err error
	if r.Name, err = unescape(f[0]); err != nil {
		return Record{}, fmt.Errorf("name: %w", err)
	}
	if r.Size, err = parseNonNegative(f[1]); err != nil {
		return Record{}, fmt.Errorf("size: %w", err)
	}
	if len(f[2]) != 32 || strings.ToLower(f[2]) != f[2] {
		return Record{}, fmt.Errorf("md5 %.40q is not 32 lowercase hex digits", f[2])
	}
	if _, err := hex.Decode(r.MD5[:], []byte(f[2])); err != nil {
		return Record{}, fmt.Errorf("md5 %.40q: %w", f[2], err)
	}
	if r.ETag, err = unescape(f[3]); err != nil {
		return Record{}, fmt.Errorf("etag: %w", err)
	}
	ns, err := strconv.ParseInt(f[4], 10, 64)
	if err != nil {
		return Record{}, fmt.Errorf("modified %.30q is not Unix nanoseconds", f[4])
	}
	r.Modified = time.Unix(0, ns).UTC()
	if f[5] != noPack {
		r.Pack = f[5]
	}
	if r.Offset, err = parseNonNegative(f[6]); err != nil {
		return Record{}, fmt.Errorf("offset: %w", err)
	}
	return r, r.validate()
}

func parseNonNegative(s string) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || (len(s) > 1 && s[0] == '0') || s[0] == '+' {
		return 0, fmt.Errorf("%.30q is not a non-negative decimal", s)
	}
	return n, nil
}

func needsEscape(c byte) bool { return c < 0x20 || c == 0x7f || c == '%' }

func appendEscaped(dst []byte, s string) []byte {
	const digits = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		if c := s[i]; needsEscape(c) {
			dst = append(dst, '%', digits[c>>4], digits[c&15])
		} else {
			dst = append(dst, c)
		}
	}
	return dst
}

// unescape reverses appendEscaped, accepting only what it writes, so a record has one spelling.
func unescape(s string) (string, error) {
	if !strings.ContainsRune(s, '%') {
		for i := 0; i < len(s); i++ {
			if needsEscape(s[i]) {
				return "", fmt.Errorf("raw control byte 0x%02x", s[i])
			}
		}
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '%':
			if i+3 > len(s) {
				return "", errors.New("truncated %-escape")
			}
			v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
			if err != nil || !needsEscape(byte(v)) || strings.ToUpper(s[i+1:i+3]) != s[i+1:i+3] {
				return "", fmt.Errorf("bad %%-escape %q", s[i:i+3])
			}
			b.WriteByte(byte(v))
			i += 2
		case needsEscape(c):
			return "", fmt.Errorf("raw control byte 0x%02x", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}
