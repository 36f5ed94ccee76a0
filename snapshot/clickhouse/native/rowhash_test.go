package native

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// rowhash-26.7.native is `SELECT *, cityHash64(tuple(*)) AS __tracevault_row_hash FROM
// rowhash_types FORMAT Native` with max_threads=1 on ClickHouse 26.7 (three parts, of 7, 7 and 6
// rows: three blocks), and rowhash-plain-26.7.native the same without the hash: 20 rows of a
// table with Nullable,
// LowCardinality (Nullable too), Map, Array(Nullable), named Tuple, DateTime64, Date32, UUID,
// Decimal, Bool, Enum8, a MATERIALIZED and an ALIAS column. The server's
// `SELECT count(), sum(cityHash64(tuple(*)))` of the table gave 20, 7170144254281282006.
func TestRowHashTakesTheColumnOut(t *testing.T) {
	hashed := readTestdata(t, "rowhash-26.7.native")
	plain := readTestdata(t, "rowhash-plain-26.7.native")
	for _, name := range []string{"one byte a read", "whole"} {
		src := io.Reader(bytes.NewReader(hashed))
		if name == "one byte a read" {
			src = iotest.OneByteReader(src)
		}
		r := NewReader(src, RowHash("__tracevault_row_hash"), Newest("dt"))
		got, err := io.ReadAll(r)
		r.Close()
		if err != nil || !bytes.Equal(got, plain) {
			t.Errorf("%s: passed %d bytes (%v), want the %d of the plain export", name, len(got), err, len(plain))
		}
		if sum, ok := r.RowHashSum(); !ok || sum != 7170144254281282006 || r.Rows() != 20 || r.Blocks() != 3 {
			t.Errorf("%s: sum %d (%v) over %d rows in %d blocks, want the server's 7170144254281282006 over 20 in 3", name, sum, ok, r.Rows(), r.Blocks())
		}
		if v, _ := r.Newest(); v != "2026-11-18T11:06:59Z" {
			t.Errorf("%s: newest %q, want the 20th row's", name, v)
		}
	}
	// Without the option the column passes and nothing is summed.
	r := NewReader(bytes.NewReader(hashed))
	got, err := io.ReadAll(r)
	r.Close()
	if _, ok := r.RowHashSum(); err != nil || ok || !bytes.Equal(got, hashed) {
		t.Errorf("without RowHash: passed %d of %d bytes (%v), summed %v", len(got), len(hashed), err, ok)
	}
}

func TestRowHashRefusesAStreamWithoutIt(t *testing.T) {
	hash := func(b *block, name, typ string, v ...uint64) *block { return b.str(name).str(typ).u64s(v...) }
	tests := []struct {
		name    string
		stream  []byte
		want    []byte // the stream passed on
		sum     uint64
		wantErr string
	}{
		{"two blocks", append(hash(new(block).uvarint(2).uvarint(2).str("x").str("UInt8").raw(1, 2), "h", "UInt64", 5, 7).Bytes(),
			hash(new(block).uvarint(2).uvarint(1).str("x").str("UInt8").raw(3), "h", "UInt64", 1<<63).Bytes()...),
			append(new(block).uvarint(1).uvarint(2).str("x").str("UInt8").raw(1, 2).Bytes(), new(block).uvarint(1).uvarint(1).str("x").str("UInt8").raw(3).Bytes()...),
			12 + 1<<63, ""},
		{"the sum wraps", hash(new(block).uvarint(2).uvarint(2).str("x").str("UInt8").raw(1, 2), "h", "UInt64", 1<<63, 1<<63+9).Bytes(),
			new(block).uvarint(1).uvarint(2).str("x").str("UInt8").raw(1, 2).Bytes(), 9, ""},
		{"an empty block", new(block).uvarint(2).uvarint(0).str("x").str("UInt8").str("h").str("UInt64").Bytes(),
			new(block).uvarint(1).uvarint(0).str("x").str("UInt8").Bytes(), 0, ""},
		{"no hash column", new(block).uvarint(2).uvarint(1).str("x").str("UInt8").raw(1).str("y").str("UInt64").u64(1).Bytes(), nil, 0, `not the row hash "h"`},
		{"a hash of another type", hash(new(block).uvarint(2).uvarint(1).str("x").str("UInt8").raw(1), "h", "Int64", 1).Bytes(), nil, 0, `not the row hash "h"`},
		{"the hash alone", hash(new(block).uvarint(1).uvarint(1), "h", "UInt64", 1).Bytes(), nil, 0, "has no row hash column"},
		{"cut in the hash", hash(new(block).uvarint(2).uvarint(2).str("x").str("UInt8").raw(1, 2), "h", "UInt64", 1).Bytes(), nil, 0, "ends inside a block"},
	}
	for _, tt := range tests {
		r := NewReader(iotest.OneByteReader(bytes.NewReader(tt.stream)), RowHash("h"))
		got, err := io.ReadAll(r)
		r.Close()
		sum, _ := r.RowHashSum()
		switch {
		case tt.wantErr == "" && (err != nil || !bytes.Equal(got, tt.want) || sum != tt.sum):
			t.Errorf("%s: passed %x, sum %d, %v; want %x, sum %d", tt.name, got, sum, err, tt.want, tt.sum)
		case tt.wantErr != "":
			var e *Error
			if !errors.As(err, &e) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: %v, want %q", tt.name, err, tt.wantErr)
			}
		}
	}
}
