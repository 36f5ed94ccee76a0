package native

import (
	"encoding/binary"
	"fmt"
	"sync/atomic"
)

// RowHash makes a Reader take the column of that name, the last of every block and of type
// UInt64, out of the stream and keep the wrapping sum of its values (Reader.RowHashSum). An
// export that appends a hash of each row to its SELECT gets the partition's content checksum
// from the same read as its rows, and stores the rows as the table has them. A block whose last
// column is not that one is an error. An empty name takes nothing out.
func RowHash(column string) Option {
	return func(s *scanner) {
		if column != "" {
			s.hashes = &rowHashes{column: column}
		}
	}
}

type rowHashes struct {
	column string
	sum    atomic.Uint64
}

// RowHashSum is the wrapping sum of the RowHash column in the blocks checked so far (after
// io.EOF, in the stream), as the server's sum() of it would be; ok is false without RowHash.
func (r *Reader) RowHashSum() (sum uint64, ok bool) {
	if r.hashes == nil {
		return 0, false
	}
	return r.hashes.sum.Load(), true
}

// dropHashColumnFromHeader sends a block's column count less the row hash column in place of
// the count just read, which started at start.
func (s *scanner) dropHashColumnFromHeader(start int, cols uint64) error {
	if cols < 2 {
		return fmt.Errorf("a block of %d columns has no row hash column %q besides the table's", cols, s.hashes.column)
	}
	end := s.r
	s.r = start
	err := s.flush()
	s.r, s.sent = end, end
	if err != nil || s.out == nil {
		return err
	}
	_, err = s.out.Write(binary.AppendUvarint(nil, cols-1))
	return err
}

// sumHashColumn reads a block's last column, which must be the row hash, adds its values to
// the sum and leaves it out of the stream.
func (s *scanner) sumHashColumn(rows uint64) error {
	if err := s.flush(); err != nil {
		return err
	}
	s.drop = true
	defer func() { s.drop, s.sent = false, s.r }()
	name, err := s.str()
	if err != nil {
		return err
	}
	s.col = name
	if s.typ, err = s.str(); err != nil {
		return err
	}
	if name != s.hashes.column || s.typ != "UInt64" {
		return fmt.Errorf("the last column is not the row hash %q UInt64 the query asked for", s.hashes.column)
	}
	var sum uint64
	for n := rows; n > 0; {
		if err := s.need(8); err != nil {
			return err
		}
		k := min(n, uint64(s.w-s.r)/8)
		for range k {
			sum += binary.LittleEndian.Uint64(s.buf[s.r:])
			s.r += 8
		}
		n -= k
	}
	s.hashes.sum.Add(sum)
	return nil
}
