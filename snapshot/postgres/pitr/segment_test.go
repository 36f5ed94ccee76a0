package pitr

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"
)

func sampleRecords() []*Record {
	t0 := time.Date(2026, 11, 27, 10, 15, 0, 123456000, time.UTC)
	return []*Record{
		{Op: OpRelation, Relation: Relation{OID: 16384, Schema: "public", Name: "traces", ReplicaIdentity: 'd',
			Columns: []RelColumn{{Name: "id", Key: true, Type: 25, TypeMod: -1}, {Name: "n", Type: 23, TypeMod: -1}}}},
		{Op: OpBegin, Xid: 742, LSN: 0x16B3748, Time: t0},
		{Op: OpInsert, Rel: 16384, New: []Value{{Kind: ValueText, Data: []byte("a")}, {Kind: ValueNull}}},
		{Op: OpUpdate, Rel: 16384, OldKind: 'K', Old: []Value{{Kind: ValueText, Data: []byte("a")}, {Kind: ValueNull}},
			New: []Value{{Kind: ValueText, Data: []byte("b")}, {Kind: ValueUnchanged}}},
		{Op: OpUpdate, Rel: 16384, New: []Value{{Kind: ValueText, Data: []byte("")}, {Kind: ValueText, Data: []byte("7")}}},
		{Op: OpDelete, Rel: 16384, OldKind: 'O', Old: []Value{{Kind: ValueText, Data: []byte("b")}, {Kind: ValueText, Data: []byte("7")}}},
		{Op: OpTruncate, Options: 2, Rels: []uint32{16384, 4294967295}},
		{Op: OpCommit, LSN: 0x16B3748, EndLSN: 0x16B3778, Time: t0},
	}
}

func encode(t testing.TB, recs []*Record) []byte {
	var buf bytes.Buffer
	w, err := NewSegmentWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func readAll(b []byte) ([]*Record, error) {
	r, err := NewSegmentReader(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	var out []*Record
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, rec)
	}
}

func TestSegmentRoundTrip(t *testing.T) {
	want := sampleRecords()
	got, err := readAll(encode(t, want))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip differs:\n got %+v\nwant %+v", got, want)
	}
}

func TestSegmentDamageRefused(t *testing.T) {
	good := encode(t, sampleRecords())
	flipped := bytes.Clone(good)
	flipped[len(flipped)/2] ^= 0x40
	version := bytes.Clone(good)
	version[len(segmentMagic)] = 9
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"truncated before the trailer", good[:len(good)-7]},
		{"cut mid-record", good[:40]},
		{"one bit flipped", flipped},
		{"trailing garbage", append(bytes.Clone(good), 0)},
		{"unknown version", version},
		{"empty", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := readAll(tc.b); !errors.Is(err, ErrBadSegment) {
				t.Fatalf("want ErrBadSegment, got %v", err)
			}
		})
	}
}

// TestSegmentRewind drops a transaction already written, as a schema change does: still in
// the writer's buffer, or already in the file.
func TestSegmentRewind(t *testing.T) {
	big := &Record{Op: OpInsert, Rel: 16384, New: []Value{{Kind: ValueText, Data: bytes.Repeat([]byte("z"), 3*writeBuffer)}, {Kind: ValueNull}}}
	recs := sampleRecords()
	for _, tc := range []struct {
		name    string
		dropped []*Record
	}{
		{"buffered", recs[1:4]},
		{"written to the file", append([]*Record{recs[1], big}, recs[2:5]...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := os.Create(filepath.Join(t.TempDir(), "seg"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			w, err := NewSegmentWriter(f)
			if err != nil {
				t.Fatal(err)
			}
			write := func(rs []*Record) {
				for _, r := range rs {
					if err := w.Write(r); err != nil {
						t.Fatal(err)
					}
				}
			}
			write(recs)
			m := w.mark()
			write(tc.dropped)
			if err := w.rewind(f, m); err != nil {
				t.Fatal(err)
			}
			write(recs[1:2])
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(f.Name())
			if err != nil {
				t.Fatal(err)
			}
			got, err := readAll(b)
			if err != nil {
				t.Fatal(err)
			}
			if want := append(slices.Clone(recs), recs[1]); !reflect.DeepEqual(got, want) {
				t.Fatalf("after rewind: got %d records, want the %d before the mark and the one after", len(got), len(want))
			}
		})
	}
}

// FuzzSegment feeds arbitrary bytes to the parser: it must never panic or allocate ahead of
// its input, and whatever it accepts must encode back to the same records.
func FuzzSegment(f *testing.F) {
	f.Add(encode(f, sampleRecords()))
	f.Add(encode(f, nil))
	f.Add([]byte(segmentMagic + "\x01R\xff\xff\xff\xff\x0f"))
	f.Fuzz(func(t *testing.T, b []byte) {
		recs, err := readAll(b)
		if err != nil {
			return
		}
		again, err := readAll(encode(t, recs))
		if err != nil || !reflect.DeepEqual(again, recs) {
			t.Fatalf("accepted segment does not round-trip: %v", err)
		}
	})
}
