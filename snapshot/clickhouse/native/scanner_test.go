package native

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
)

// The testdata streams were captured from ClickHouse 18.16 over HTTP (FORMAT Native); see
// the query in each test.
func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCheckServerStreams(t *testing.T) {
	tests := []struct {
		file       string
		rows, blks int64
	}{
		// 27 columns of every type 18.16 has (numbers, dates, Decimal, UUID, FixedString,
		// Nullable, Array, nested Array, Tuple, LowCardinality and LowCardinality(Nullable),
		// Array(LowCardinality), Enum8, Nullable(Nothing)), 20 rows in blocks of 7.
		{"types-18.16.native", 20, 3},
		// groupUniqArrayState(String), groupArrayState(UInt64): Langfuse's project_environments.
		{"aggstate-18.16.native", 3, 1},
		// A trace whose output quotes a server exception: data, not an error.
		{"exception-text-row-18.16.native", 1, 1},
		{"empty-18.16.native", 0, 0},
		// uniqState(String) and uniqState(UInt64), keys with 750 and with 2 values (one
		// hashing to zero or not, either way), from 18.16 and 26.7: the layout is the same.
		{"uniq-18.16.native", 4, 1},
		{"uniq-26.7.native", 4, 2},
	}
	for _, tt := range tests {
		data := readTestdata(t, tt.file)
		// One byte a Read, to cross every buffer boundary.
		r := NewReader(iotest.OneByteReader(bytes.NewReader(data)))
		got, err := io.ReadAll(r)
		r.Close()
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%s: passed %d of %d bytes, err %v", tt.file, len(got), len(data), err)
		}
		if r.Rows() != tt.rows || r.Blocks() != tt.blks {
			t.Errorf("%s: %d rows in %d blocks, want %d in %d", tt.file, r.Rows(), r.Blocks(), tt.rows, tt.blks)
		}
	}
}

func TestCheckAppendedException(t *testing.T) {
	data := readTestdata(t, "types-18.16.native")
	tests := []struct{ name, text string }{
		{"18.16", "Code: 241, e.displayText() = DB::Exception: Memory limit (for query) exceeded, e.what() = DB::Exception\n"},
		{"modern", "Code: 241. DB::Exception: Memory limit (for query) exceeded: while executing 'x'. (MEMORY_LIMIT_EXCEEDED) (version 24.8.4.13 (official build))\n"},
		{"modern tagged", "__exception__\r\nabcdefghijklmnop\r\nCode: 241. DB::Exception: Memory limit (for query) exceeded\r\n75 abcdefghijklmnop\r\n__exception__\r\n"},
	}
	for _, tt := range tests {
		stream := append(append([]byte{}, data...), tt.text...)
		_, err := Check(bytes.NewReader(stream))
		var e *Error
		if !errors.As(err, &e) || !strings.Contains(e.ServerText, "Memory limit (for query) exceeded") {
			t.Errorf("%s: err %v, want the server's text", tt.name, err)
			continue
		}
		if e.Block != 3 || e.Offset != int64(len(data)) {
			t.Errorf("%s: failed at block %d byte %d, want block 3 at byte %d", tt.name, e.Block, e.Offset, len(data))
		}
	}
}

// Every cut of a stream fails, except at the boundaries between blocks.
func TestCheckTruncated(t *testing.T) {
	data := readTestdata(t, "types-18.16.native")
	var whole []int
	for n := 1; n < len(data); n++ {
		rows, err := Check(bytes.NewReader(data[:n]))
		if err == nil {
			whole = append(whole, n)
			if rows != 7 && rows != 14 {
				t.Errorf("cut at %d: %d rows, want whole blocks", n, rows)
			}
			continue
		}
		var e *Error
		if !errors.As(err, &e) || (!errors.Is(err, ErrTruncated) && e.ServerText == "") {
			t.Errorf("cut at %d: %v, want truncated", n, err)
		}
	}
	if len(whole) != 2 {
		t.Errorf("cuts accepted at %v, want exactly the 2 block boundaries", whole)
	}
}

// block builds a Native block for tests of types 18.16 cannot produce.
type block struct{ bytes.Buffer }

func (b *block) uvarint(v uint64) *block {
	b.Write(binary.AppendUvarint(nil, v))
	return b
}
func (b *block) str(s string) *block { b.uvarint(uint64(len(s))); b.WriteString(s); return b }
func (b *block) u64(v uint64) *block {
	b.Write(binary.LittleEndian.AppendUint64(nil, v))
	return b
}
func (b *block) raw(p ...byte) *block { b.Write(p); return b }

func TestCheckModernTypes(t *testing.T) {
	tests := []struct {
		name    string
		block   *block
		rows    int64
		wantErr string
	}{
		{"map and named tuple", new(block).uvarint(2).uvarint(2).
			// Map(LowCardinality(String), UInt8): offsets [1, 3], LowCardinality keys version,
			// then 3 keys in one granule with additional keys, then 3 values.
			str("m").str("Map(LowCardinality(String), UInt8)").u64(1).u64s(1, 3).
			u64(1<<9).u64(2).str("a").str("b").u64(3).raw(0, 1, 0).raw(7, 8, 9).
			// Tuple(a String, `b c` Nullable(DateTime64(3, 'UTC'))).
			str("t").str("Tuple(a String, `b c` Nullable(DateTime64(3, 'UTC')))").str("x").str("y").
			raw(0, 1).u64(5).u64(0), 2, ""},
		{"decimal, bool, date32, int256, ipv6", new(block).uvarint(5).uvarint(1).
			str("d").str("Decimal(20, 4)").raw(make([]byte, 16)...).
			str("b").str("Bool").raw(1).
			str("d32").str("Date32").raw(0, 0, 0, 0).
			str("i").str("Int256").raw(make([]byte, 32)...).
			str("ip").str("IPv6").raw(make([]byte, 16)...), 1, ""},
		{"simple aggregate", new(block).uvarint(1).uvarint(1).str("s").str("SimpleAggregateFunction(groupUniqArrayArray, Array(String))").u64(1).str("x"), 1, ""},
		{"unknown type", new(block).uvarint(1).uvarint(1).str("j").str("Object('json')").raw(0), 0, `column "j"`},
		{"uniq", new(block).uvarint(1).uvarint(2).str("u").str("AggregateFunction(uniq, String)").
			raw(0).uvarint(0).raw(3).uvarint(2).raw(make([]byte, 8)...), 2, ""},
		{"uniq too large", new(block).uvarint(1).uvarint(1).str("u").str("AggregateFunction(uniq, UInt64)").raw(0).uvarint(1<<16 + 1), 0, "more than a UniquesHashSet holds"},
		{"uniq cut short", new(block).uvarint(1).uvarint(1).str("u").str("AggregateFunction(uniq, UInt64)").raw(0).uvarint(2).raw(1, 2, 3, 4), 0, "ends inside a block"},
		{"versioned uniq", new(block).uvarint(1).uvarint(1).str("u").str("AggregateFunction(1, uniq, String)").raw(0), 0, "AggregateFunction(1, uniq, String)"},
		{"argMax", new(block).uvarint(1).uvarint(1).str("a").str("AggregateFunction(argMax, String, DateTime)").raw(0), 0, "argMax"},
		{"unknown state", new(block).uvarint(1).uvarint(1).str("q").str("AggregateFunction(quantiles(0.5), Float64)").raw(0), 0, "quantiles"},
		{"huge string", new(block).uvarint(1).uvarint(1).str("s").str("String").uvarint(1 << 62), 0, "ends inside a block"},
		{"overflowing array", new(block).uvarint(1).uvarint(1).str("a").str("Array(UInt64)").u64(1 << 62), 0, "overflow"},
		{"granule too long", new(block).uvarint(1).uvarint(1).str("l").str("LowCardinality(String)").u64(1).u64(0).u64(2).raw(0, 0), 0, "granule"},
	}
	for _, tt := range tests {
		rows, err := Check(bytes.NewReader(tt.block.Bytes()))
		switch {
		case tt.wantErr == "" && (err != nil || rows != tt.rows):
			t.Errorf("%s: %d rows, %v; want %d", tt.name, rows, err, tt.rows)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("%s: %v, want %q", tt.name, err, tt.wantErr)
		}
	}
}

func (b *block) u64s(v ...uint64) *block {
	for _, x := range v {
		b.u64(x)
	}
	return b
}

func TestParseType(t *testing.T) {
	tests := []struct {
		typ  string
		kind kind
		size uint64
		err  bool
	}{
		{"DateTime('Europe/Berlin')", kindFixed, 4, false},
		{"DateTime64(9, 'UTC')", kindFixed, 8, false},
		{"Enum16('a' = 1, 'b,)' = 2)", kindFixed, 2, false},
		{"FixedString(12)", kindFixed, 12, false},
		{"Decimal(9, 2)", kindFixed, 4, false},
		{"Decimal(76, 2)", kindFixed, 32, false},
		{"Nullable(String)", kindNullable, 0, false},
		{"Tuple(String, Array(UInt8))", kindTuple, 0, false},
		{"Map(String, Array(Tuple(a UInt8, b String)))", kindMap, 0, false},
		{"LowCardinality(Nullable(String))", kindLowCard, 0, false},
		{"Nested(a String, b UInt8)", kindArray, 0, false},
		{"MultiPolygon", kindArray, 0, false},
		{"Point", kindTuple, 0, false},
		{"Time64(3)", kindFixed, 8, false},
		{"LowCardinality(Array(String))", 0, 0, true},
		{"Array(String", 0, 0, true},
		{"Tuple()", 0, 0, true},
		{"FixedString(0)", 0, 0, true},
		{"Variant(String, UInt8)", 0, 0, true},
		{strings.Repeat("Array(", 40) + "UInt8" + strings.Repeat(")", 40), 0, 0, true},
	}
	for _, tt := range tests {
		got, err := parseType(tt.typ)
		if tt.err {
			if err == nil {
				t.Errorf("%s: parsed, want an error", tt.typ)
			}
			continue
		}
		if err != nil || got.kind != tt.kind || got.size != tt.size {
			t.Errorf("%s: %+v, %v; want kind %d size %d", tt.typ, got, err, tt.kind, tt.size)
		}
	}
}

// Closing a Reader whose consumer stopped early ends its goroutine.
func TestReaderCloseEarly(t *testing.T) {
	data := readTestdata(t, "types-18.16.native")
	r := NewReader(bytes.NewReader(data))
	if _, err := r.Read(make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	r.Close()
	if _, err := r.Read(make([]byte, 10)); err == nil {
		t.Error("read after close succeeded")
	}
}

func FuzzNativeScanner(f *testing.F) {
	for _, name := range []string{"types-18.16.native", "aggstate-18.16.native", "exception-text-row-18.16.native", "uniq-18.16.native", "uniq-26.7.native", "rowhash-26.7.native"} {
		data := readTestdata(f, name)
		f.Add(data)
		f.Add(append(append([]byte{}, data...), "Code: 241. DB::Exception: Memory limit exceeded"...))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader(bytes.NewReader(data), Newest("dt"))
		got, err := io.ReadAll(r)
		r.Close()
		// A well-formed stream passes whole; a malformed one up to where it failed at most.
		if (err == nil && !bytes.Equal(got, data)) || !bytes.HasPrefix(data, got) {
			t.Fatalf("passed %d of %d bytes (%v)", len(got), len(data), err)
		}
		if err == nil && r.Rows() < 0 {
			t.Fatalf("%d rows", r.Rows())
		}
		// Taking a column out leaves a well-formed stream of the same rows.
		r = NewReader(bytes.NewReader(data), RowHash("__tracevault_row_hash"))
		got, err = io.ReadAll(r)
		r.Close()
		if err == nil {
			if rows, err := Check(bytes.NewReader(got)); err != nil || rows != r.Rows() {
				t.Fatalf("with the row hash taken out: %d rows, %v; want %d", rows, err, r.Rows())
			}
		}
	})
}
