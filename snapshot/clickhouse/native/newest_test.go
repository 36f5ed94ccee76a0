package native

import (
	"bytes"
	"encoding/binary"
	"io"
	"testing"
	"testing/iotest"
	"time"
)

func TestReaderNewest(t *testing.T) {
	u32 := func(v ...uint32) []byte {
		var b []byte
		for _, x := range v {
			b = binary.LittleEndian.AppendUint32(b, x)
		}
		return b
	}
	i64 := func(v ...int64) []byte {
		var b []byte
		for _, x := range v {
			b = binary.LittleEndian.AppendUint64(b, uint64(x))
		}
		return b
	}
	// One block of two columns: id String and v of the given type with the given values.
	blk := func(typ string, rows int, values []byte) []byte {
		b := new(block).uvarint(2).uvarint(uint64(rows)).str("id").str("String")
		for range rows {
			b.str("x")
		}
		b.str("v").str(typ).raw(values...)
		return b.Bytes()
	}
	tests := []struct {
		name   string
		column string
		stream []byte
		want   string
	}{
		{"DateTime over two blocks", "v", append(blk("DateTime", 3, u32(1795000000, 1795000100, 5)), blk("DateTime", 2, u32(1795000050, 7))...), "2026-11-18T11:08:20Z"},
		{"DateTime with a zone", "v", blk("DateTime('Europe/Berlin')", 1, u32(1795000000)), "2026-11-18T11:06:40Z"},
		{"DateTime64(3)", "v", blk("DateTime64(3, 'UTC')", 2, i64(1795000000123, 1795000000999)), "2026-11-18T11:06:40.999Z"},
		{"negative Int64", "v", blk("Int64", 3, i64(-5, -2, -9)), "-2"},
		{"Int8 across zero", "v", blk("Int8", 3, []byte{0xff, 3, 0x80}), "3"},
		{"UInt64 above MaxInt64", "v", blk("UInt64", 2, i64(-1, 1)), "18446744073709551615"},
		{"Date", "v", blk("Date", 1, []byte{0x8e, 0x50}), "2026-06-18"},
		{"a type a version cannot have", "v", blk("Float64", 1, i64(1)), ""},
		{"no such column", "w", blk("DateTime", 1, u32(1)), ""},
		{"empty stream", "v", nil, ""},
	}
	for _, tt := range tests {
		// One byte a Read, so values cross every buffer boundary.
		r := NewReader(iotest.OneByteReader(bytes.NewReader(tt.stream)), Newest(tt.column))
		got, err := io.ReadAll(r)
		r.Close()
		if err != nil || !bytes.Equal(got, tt.stream) {
			t.Errorf("%s: passed %d of %d bytes, err %v", tt.name, len(got), len(tt.stream), err)
		}
		text, at := r.Newest()
		if text != tt.want {
			t.Errorf("%s: newest %q, want %q", tt.name, text, tt.want)
		}
		// A time column's newest is a time too, the same one.
		if !at.IsZero() && at.Format(time.RFC3339Nano) != text && at.Format(time.DateOnly) != text {
			t.Errorf("%s: newest %q as a time is %s", tt.name, text, at)
		}
	}
	// A stream cut inside the tracked column is an error, as when skipped.
	whole := blk("DateTime", 3, u32(1, 2, 3))
	r := NewReader(bytes.NewReader(whole[:len(whole)-2]), Newest("v"))
	if _, err := io.ReadAll(r); err == nil {
		t.Error("a stream cut inside the tracked column was accepted")
	}
	r.Close()
}
