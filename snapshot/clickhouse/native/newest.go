package native

import (
	"encoding/binary"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Option tunes a Reader.
type Option func(*scanner)

// Newest makes a Reader keep the largest value of the named column (a ReplacingMergeTree's
// version, a row's event time) while it walks the stream: what the export actually held, which
// a separate query could not tell, racing the inserts. The column's type must be DateTime,
// DateTime64, Date, Date32 or an integer of at most 64 bits; of any other type, or without a
// column of that name, Reader.Newest stays empty; an empty name tracks nothing.
func Newest(column string) Option {
	return func(s *scanner) {
		if column != "" {
			s.newest = &newest{column: column}
		}
	}
}

// newest is the largest value seen so far, as an ordered key and the type that reads it.
type newest struct {
	column string
	mu     sync.Mutex
	vt     versionType
	key    uint64
	seen   bool
}

func (n *newest) offer(vt versionType, key uint64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.seen && vt.name != n.vt.name {
		return // one column has one type; a block that says otherwise is not trusted with it
	}
	if !n.seen || key > n.key {
		n.vt, n.key, n.seen = vt, key, true
	}
}

func (n *newest) value() (string, time.Time) {
	if n == nil {
		return "", time.Time{}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.seen {
		return "", time.Time{}
	}
	return n.vt.format(n.key)
}

// versionType reads the values of a type a version can have. Keys order like the values:
// a signed value has its sign bit flipped.
type versionType struct {
	name   string
	size   int
	signed bool
	// unit is a time type's value in nanoseconds (seconds: 1e9; DateTime64(3): 1e6); days is a
	// date type; neither, an integer.
	unit int64
	days bool
}

func parseVersionType(typeName string) (versionType, bool) {
	base, args, _ := strings.Cut(strings.TrimSpace(typeName), "(")
	vt := versionType{name: typeName}
	switch base {
	case "DateTime":
		vt.size, vt.unit = 4, int64(time.Second)
	case "DateTime64":
		prec, _, _ := strings.Cut(args, ",")
		p, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(prec, ")")))
		if err != nil || p < 0 || p > 9 {
			return versionType{}, false
		}
		vt.size, vt.signed, vt.unit = 8, true, int64(math.Pow10(9-p))
	case "Date":
		vt.size, vt.days = 2, true
	case "Date32":
		vt.size, vt.signed, vt.days = 4, true, true
	case "UInt8", "UInt16", "UInt32", "UInt64":
		bitsN, _ := strconv.Atoi(strings.TrimPrefix(base, "UInt"))
		vt.size = bitsN / 8
	case "Int8", "Int16", "Int32", "Int64":
		bitsN, _ := strconv.Atoi(strings.TrimPrefix(base, "Int"))
		vt.size, vt.signed = bitsN/8, true
	default:
		return versionType{}, false
	}
	if args != "" && base != "DateTime" && base != "DateTime64" {
		return versionType{}, false
	}
	return vt, true
}

// key reads one little-endian value as an ordered key.
func (vt versionType) key(b []byte) uint64 {
	var v uint64
	switch vt.size {
	case 1:
		v = uint64(b[0])
	case 2:
		v = uint64(binary.LittleEndian.Uint16(b))
	case 4:
		v = uint64(binary.LittleEndian.Uint32(b))
	default:
		v = binary.LittleEndian.Uint64(b)
	}
	if vt.signed {
		shift := 64 - 8*vt.size
		v = uint64(int64(v<<shift)>>shift) ^ (1 << 63) // sign-extend, then order
	}
	return v
}

// format gives a key's value as text and, for a time or date, as a time.
func (vt versionType) format(key uint64) (string, time.Time) {
	if vt.signed {
		key ^= 1 << 63
	}
	switch {
	case vt.days:
		t := time.Unix(int64(key)*86400, 0).UTC()
		return t.Format(time.DateOnly), t
	case vt.unit > 0:
		perSecond := int64(time.Second) / vt.unit
		v := int64(key)
		t := time.Unix(v/perSecond, v%perSecond*vt.unit).UTC()
		return t.Format(time.RFC3339Nano), t
	case vt.signed:
		return strconv.FormatInt(int64(key), 10), time.Time{}
	}
	return strconv.FormatUint(key, 10), time.Time{}
}

// readNewest passes over n values of the tracked column, keeping the largest.
func (s *scanner) readNewest(vt versionType, n uint64) error {
	size := uint64(vt.size)
	var best uint64 // every key is >= 0
	for n > 0 {
		if err := s.need(vt.size); err != nil {
			return err
		}
		k := min(n, uint64(s.w-s.r)/size)
		for j := uint64(0); j < k; j++ {
			best = max(best, vt.key(s.buf[s.r:]))
			s.r += vt.size
		}
		n -= k
	}
	s.newest.offer(vt, best)
	return nil
}
