package pitr

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"time"
)

// A segment is a run of committed transactions as pgoutput decoded them, in commit order, in a
// compact binary form of our own (so that a restore needs no server to interpret it):
//
//	header  "TVPGSEG" version(1 byte)
//	record  op(1 byte) length(uvarint) payload
//	trailer op 'Z' length payload{records(uvarint) crc32c(4 bytes BE) of every byte before it}
//
// Integers in payloads are uvarints (varints for signed ones), strings and values are
// uvarint-length-prefixed. A segment without its trailer, or whose checksum differs, is refused:
// a torn upload can never replay as a shorter history.
const (
	segmentMagic   = "TVPGSEG"
	SegmentVersion = 1
)

// Op is a record's kind.
type Op byte

const (
	OpRelation Op = 'R'
	OpBegin    Op = 'B'
	OpInsert   Op = 'I'
	OpUpdate   Op = 'U'
	OpDelete   Op = 'D'
	OpTruncate Op = 'T'
	OpCommit   Op = 'C'
	opTrailer  Op = 'Z'
)

// Relation is a table as pgoutput described it: changes name it by OID.
type Relation struct {
	OID             uint32      `json:"oid"`
	Schema          string      `json:"schema"`
	Name            string      `json:"name"`
	ReplicaIdentity byte        `json:"replica_identity"` // 'd', 'f', 'i', 'n'
	Columns         []RelColumn `json:"columns"`
}

// RelColumn is one column; Key marks the replica identity's columns.
type RelColumn struct {
	Name    string `json:"name"`
	Key     bool   `json:"key,omitempty"`
	Type    uint32 `json:"type"`
	TypeMod int32  `json:"typmod"`
}

// Value kinds, as pgoutput sends them.
const (
	ValueNull      = 'n'
	ValueUnchanged = 'u' // an unchanged TOASTed value: not sent, keep the row's
	ValueText      = 't'
)

// Value is one column of a tuple in text form.
type Value struct {
	Kind byte
	Data []byte
}

// Record is one decoded record; which fields are set depends on Op.
type Record struct {
	Op       Op
	Relation Relation  // OpRelation
	Rel      uint32    // OpInsert, OpUpdate, OpDelete: the relation's OID
	Xid      uint32    // OpBegin
	LSN      uint64    // OpBegin: the final LSN; OpCommit: the commit record's LSN
	EndLSN   uint64    // OpCommit: the end of the transaction
	Time     time.Time // OpBegin, OpCommit: the commit time
	OldKind  byte      // OpUpdate, OpDelete: 0, 'K' (key) or 'O' (whole old row)
	Old, New []Value
	Options  byte     // OpTruncate: 1 CASCADE, 2 RESTART IDENTITY
	Rels     []uint32 // OpTruncate
}

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// SegmentWriter encodes records to w.
type SegmentWriter struct {
	w       io.Writer
	out     []byte // encoded, not yet written to w
	flushed int64  // bytes written to w
	crc     uint32
	records uint64
	bytes   int64
	buf     []byte
}

// writeBuffer bounds what the writer holds before writing; a mark is free (no write) while the
// transaction after it fits.
const writeBuffer = 256 << 10

// NewSegmentWriter writes the header.
func NewSegmentWriter(w io.Writer) (*SegmentWriter, error) {
	s := &SegmentWriter{w: w}
	return s, s.raw(append([]byte(segmentMagic), SegmentVersion))
}

func (s *SegmentWriter) flush() error {
	if len(s.out) == 0 {
		return nil
	}
	n, err := s.w.Write(s.out)
	s.flushed += int64(n)
	s.out = s.out[:0]
	return err
}

// Bytes is how much has been written so far.
func (s *SegmentWriter) Bytes() int64 { return s.bytes }

// Records is how many records have been written so far.
func (s *SegmentWriter) Records() uint64 { return s.records }

func (s *SegmentWriter) raw(p []byte) error {
	s.crc = crc32.Update(s.crc, crcTable, p)
	s.bytes += int64(len(p))
	s.out = append(s.out, p...)
	if len(s.out) >= writeBuffer {
		return s.flush()
	}
	return nil
}

// Write encodes one record.
func (s *SegmentWriter) Write(r *Record) error {
	p := s.buf[:0]
	switch r.Op {
	case OpRelation:
		rel := &r.Relation
		p = binary.AppendUvarint(p, uint64(rel.OID))
		p = appendString(p, rel.Schema)
		p = appendString(p, rel.Name)
		p = append(p, rel.ReplicaIdentity)
		p = binary.AppendUvarint(p, uint64(len(rel.Columns)))
		for _, c := range rel.Columns {
			var key byte
			if c.Key {
				key = 1
			}
			p = append(p, key)
			p = appendString(p, c.Name)
			p = binary.AppendUvarint(p, uint64(c.Type))
			p = binary.AppendVarint(p, int64(c.TypeMod))
		}
	case OpBegin:
		p = binary.AppendUvarint(p, uint64(r.Xid))
		p = binary.AppendUvarint(p, r.LSN)
		p = binary.AppendVarint(p, r.Time.UnixMicro())
	case OpCommit:
		p = binary.AppendUvarint(p, r.LSN)
		p = binary.AppendUvarint(p, r.EndLSN)
		p = binary.AppendVarint(p, r.Time.UnixMicro())
	case OpInsert:
		p = binary.AppendUvarint(p, uint64(r.Rel))
		p = appendTuple(p, r.New)
	case OpUpdate, OpDelete:
		p = binary.AppendUvarint(p, uint64(r.Rel))
		p = append(p, r.OldKind)
		if r.OldKind != 0 {
			p = appendTuple(p, r.Old)
		}
		if r.Op == OpUpdate {
			p = appendTuple(p, r.New)
		}
	case OpTruncate:
		p = append(p, r.Options)
		p = binary.AppendUvarint(p, uint64(len(r.Rels)))
		for _, oid := range r.Rels {
			p = binary.AppendUvarint(p, uint64(oid))
		}
	default:
		return fmt.Errorf("encode segment record: unknown op %q", r.Op)
	}
	s.buf = p
	head := binary.AppendUvarint([]byte{byte(r.Op)}, uint64(len(p)))
	if err := s.raw(head); err != nil {
		return err
	}
	s.records++
	return s.raw(p)
}

// Close writes the trailer and flushes; the segment is complete only after it.
func (s *SegmentWriter) Close() error {
	p := binary.AppendUvarint(nil, s.records)
	p = binary.BigEndian.AppendUint32(p, s.crc)
	head := binary.AppendUvarint([]byte{byte(opTrailer)}, uint64(len(p)))
	s.out = append(append(s.out, head...), p...)
	return s.flush()
}

func appendString(p []byte, s string) []byte {
	p = binary.AppendUvarint(p, uint64(len(s)))
	return append(p, s...)
}

func appendTuple(p []byte, vals []Value) []byte {
	p = binary.AppendUvarint(p, uint64(len(vals)))
	for _, v := range vals {
		p = append(p, v.Kind)
		if v.Kind == ValueText {
			p = binary.AppendUvarint(p, uint64(len(v.Data)))
			p = append(p, v.Data...)
		}
	}
	return p
}

// ErrBadSegment means a segment's bytes are not a complete, intact segment.
var ErrBadSegment = errors.New("damaged change segment")

// SegmentReader decodes a segment; Next returns io.EOF only after a verified trailer.
type SegmentReader struct {
	r       *bufio.Reader
	crc     uint32
	records uint64
	done    bool
	payload bytes.Buffer
}

// NewSegmentReader checks the header.
func NewSegmentReader(r io.Reader) (*SegmentReader, error) {
	s := &SegmentReader{r: bufio.NewReaderSize(r, 256<<10)}
	head := make([]byte, len(segmentMagic)+1)
	if _, err := io.ReadFull(s.r, head); err != nil {
		return nil, fmt.Errorf("%w: no header: %w", ErrBadSegment, err)
	}
	if string(head[:len(segmentMagic)]) != segmentMagic {
		return nil, fmt.Errorf("%w: not a segment (bad magic)", ErrBadSegment)
	}
	if head[len(segmentMagic)] != SegmentVersion {
		return nil, fmt.Errorf("%w: format version %d, this tracevault reads %d: restore with a newer tracevault", ErrBadSegment, head[len(segmentMagic)], SegmentVersion)
	}
	s.crc = crc32.Update(0, crcTable, head)
	return s, nil
}

// crcReader feeds what the reader consumes into the running checksum.
func (s *SegmentReader) readByte() (byte, error) {
	b, err := s.r.ReadByte()
	if err == nil {
		s.crc = crc32.Update(s.crc, crcTable, []byte{b})
	}
	return b, err
}

func (s *SegmentReader) readUvarint() (uint64, error) {
	var x uint64
	var shift uint
	for i := 0; i < binary.MaxVarintLen64; i++ {
		b, err := s.readByte()
		if err != nil {
			return 0, err
		}
		if b < 0x80 {
			if i == binary.MaxVarintLen64-1 && b > 1 {
				return 0, errors.New("varint overflows")
			}
			return x | uint64(b)<<shift, nil
		}
		x |= uint64(b&0x7f) << shift
		shift += 7
	}
	return 0, errors.New("varint overflows")
}

// maxRecord bounds one record: PostgreSQL values are at most 1 GiB each.
const maxRecord = 4 << 30

// Next returns the next record.
func (s *SegmentReader) Next() (*Record, error) {
	if s.done {
		return nil, io.EOF
	}
	before := s.crc
	op, err := s.readByte()
	if err != nil {
		return nil, fmt.Errorf("%w: ends without its trailer (%d records read): %w", ErrBadSegment, s.records, noEOF(err))
	}
	n, err := s.readUvarint()
	if err != nil || n > maxRecord {
		return nil, fmt.Errorf("%w: bad record length after %d records", ErrBadSegment, s.records)
	}
	s.payload.Reset()
	// CopyN grows the buffer as bytes arrive, so a forged length cannot allocate ahead of data.
	if _, err := io.CopyN(&s.payload, s.r, int64(n)); err != nil {
		return nil, fmt.Errorf("%w: record %d cut short: %w", ErrBadSegment, s.records, noEOF(err))
	}
	p := s.payload.Bytes()
	if Op(op) == opTrailer {
		d := decoder{p: p}
		count := d.uvarint()
		if d.err != nil || len(d.p) != 4 {
			return nil, fmt.Errorf("%w: bad trailer", ErrBadSegment)
		}
		if crc := binary.BigEndian.Uint32(d.p); crc != before || count != s.records {
			return nil, fmt.Errorf("%w: checksum or record count differs (%d records read, trailer says %d)", ErrBadSegment, s.records, count)
		}
		if _, err := s.r.ReadByte(); err != io.EOF {
			return nil, fmt.Errorf("%w: bytes after the trailer", ErrBadSegment)
		}
		s.done = true
		return nil, io.EOF
	}
	s.crc = crc32.Update(s.crc, crcTable, p)
	s.records++
	rec, err := decodeRecord(Op(op), p)
	if err != nil {
		return nil, fmt.Errorf("%w: record %d (%q): %w", ErrBadSegment, s.records, op, err)
	}
	return rec, nil
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// decoder reads a payload; the first failure sticks.
type decoder struct {
	p   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("bad %s", what)
	}
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.p)
	if n <= 0 {
		d.fail("integer")
		return 0
	}
	d.p = d.p[n:]
	return v
}

// varint reads binary.PutVarint's zig-zag form: the sign in the lowest bit.
func (d *decoder) varint() int64 {
	u := d.uvarint()
	return int64(u>>1) ^ -int64(u&1)
}

func (d *decoder) uint32() uint32 {
	v := d.uvarint()
	if v > 1<<32-1 {
		d.fail("oid")
	}
	return uint32(v)
}

func (d *decoder) byte() byte {
	if d.err != nil || len(d.p) == 0 {
		d.fail("byte")
		return 0
	}
	b := d.p[0]
	d.p = d.p[1:]
	return b
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil || n > uint64(len(d.p)) {
		d.fail("length")
		return nil
	}
	b := d.p[:n:n]
	d.p = d.p[n:]
	return b
}

// count reads an element count, each element being at least min bytes, so a forged count
// cannot allocate more than the payload holds.
func (d *decoder) count(min int) int {
	n := d.uvarint()
	if d.err != nil || n > uint64(len(d.p)/min) {
		d.fail("count")
		return 0
	}
	return int(n)
}

func (d *decoder) tuple() []Value {
	n := d.count(1)
	vals := make([]Value, 0, n)
	for range n {
		v := Value{Kind: d.byte()}
		switch v.Kind {
		case ValueText:
			v.Data = bytes.Clone(d.bytes())
		case ValueNull, ValueUnchanged:
		default:
			d.fail("value kind")
		}
		if d.err != nil {
			return nil
		}
		vals = append(vals, v)
	}
	return vals
}

func decodeRecord(op Op, p []byte) (*Record, error) {
	d := &decoder{p: p}
	r := &Record{Op: op}
	switch op {
	case OpRelation:
		r.Relation.OID = d.uint32()
		r.Relation.Schema = string(d.bytes())
		r.Relation.Name = string(d.bytes())
		r.Relation.ReplicaIdentity = d.byte()
		n := d.count(4)
		for range n {
			var c RelColumn
			c.Key = d.byte() == 1
			c.Name = string(d.bytes())
			c.Type = d.uint32()
			tm := d.varint()
			if tm < -1<<31 || tm > 1<<31-1 {
				d.fail("typmod")
			}
			c.TypeMod = int32(tm)
			if d.err != nil {
				break
			}
			r.Relation.Columns = append(r.Relation.Columns, c)
		}
	case OpBegin:
		r.Xid = d.uint32()
		r.LSN = d.uvarint()
		r.Time = time.UnixMicro(d.varint()).UTC()
	case OpCommit:
		r.LSN = d.uvarint()
		r.EndLSN = d.uvarint()
		r.Time = time.UnixMicro(d.varint()).UTC()
	case OpInsert:
		r.Rel = d.uint32()
		r.New = d.tuple()
	case OpUpdate, OpDelete:
		r.Rel = d.uint32()
		r.OldKind = d.byte()
		switch r.OldKind {
		case 0:
		case 'K', 'O':
			r.Old = d.tuple()
		default:
			d.fail("old tuple kind")
		}
		if op == OpUpdate {
			r.New = d.tuple()
		}
	case OpTruncate:
		r.Options = d.byte()
		n := d.count(1)
		for range n {
			r.Rels = append(r.Rels, d.uint32())
		}
	default:
		return nil, fmt.Errorf("unknown op")
	}
	if d.err == nil && len(d.p) != 0 {
		d.fail("record: trailing bytes")
	}
	if d.err != nil {
		return nil, d.err
	}
	return r, nil
}

// segmentMark is a point a segment being written can go back to: the start of a transaction
// that turned out to belong to the next base.
type segmentMark struct {
	crc     uint32
	records uint64
	bytes   int64
}

func (s *SegmentWriter) mark() segmentMark {
	return segmentMark{s.crc, s.records, s.bytes}
}

// rewind drops everything written after m; f is the file the writer writes, from offset 0.
func (s *SegmentWriter) rewind(f *os.File, m segmentMark) error {
	if m.bytes >= s.flushed {
		s.out = s.out[:m.bytes-s.flushed]
	} else {
		if err := f.Truncate(m.bytes); err != nil {
			return err
		}
		if _, err := f.Seek(m.bytes, io.SeekStart); err != nil {
			return err
		}
		s.out, s.flushed = s.out[:0], m.bytes
	}
	s.crc, s.records, s.bytes = m.crc, m.records, m.bytes
	return nil
}
