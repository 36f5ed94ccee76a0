package partsum

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/go-faster/city"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// The fixtures are real parts: an 18.16 wide part and 26.7 wide and compact parts, each a tar
// of the part directory as the server wrote it (checksums.txt version 4, LZ4).
var fixtures = []string{"ch18-wide.tar", "ch26-wide.tar", "ch26-compact.tar"}

type entry struct {
	name string
	dir  bool
	data []byte
}

func readFixture(t testing.TB, name string) []entry {
	t.Helper()
	raw, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	var out []entry
	tr := tar.NewReader(bytes.NewReader(raw))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		out = append(out, entry{name: hdr.Name, dir: hdr.Typeflag == tar.TypeDir, data: data})
	}
}

func writeTar(t testing.TB, entries []entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Mode: 0o640, Typeflag: tar.TypeReg, Size: int64(len(e.data))}
		if e.dir {
			hdr.Typeflag, hdr.Size = tar.TypeDir, 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(e.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func checksumsOf(t testing.TB, entries []entry) []byte {
	for _, e := range entries {
		if strings.HasSuffix(e.name, "/"+FileName) {
			return e.data
		}
	}
	t.Fatal("fixture has no checksums.txt")
	return nil
}

// TestCheckTar damages real parts in the ways a disk or a hostile archive can, and expects each
// to be named by part and file, never a panic and never a pass.
func TestCheckTar(t *testing.T) {
	edits := []struct {
		name string
		edit func([]entry) []entry
		want string // fragment of the error; "" passes
	}{
		{"pristine", func(e []entry) []entry { return e }, ""},
		{"a flipped byte in a column file", func(es []entry) []entry {
			for i := range es {
				if strings.HasSuffix(es[i].name, ".bin") && len(es[i].data) > 100 {
					es[i].data[len(es[i].data)/2] ^= 0x40
					return es
				}
			}
			panic("no .bin file")
		}, "has CityHash128"},
		{"a truncated column file", func(es []entry) []entry {
			for i := range es {
				if strings.HasSuffix(es[i].name, "/primary.idx") || strings.HasSuffix(es[i].name, "/primary.cidx") {
					es[i].data = es[i].data[:len(es[i].data)-1]
					return es
				}
			}
			panic("no primary index")
		}, "bytes, checksums.txt says"},
		{"a missing file", func(es []entry) []entry {
			for i := range es {
				if strings.HasSuffix(es[i].name, "/count.txt") {
					return append(es[:i], es[i+1:]...)
				}
			}
			panic("no count.txt")
		}, "file count.txt listed in checksums.txt is missing"},
		{"a truncated checksums.txt", func(es []entry) []entry {
			for i := range es {
				if strings.HasSuffix(es[i].name, "/"+FileName) {
					es[i].data = es[i].data[:len(es[i].data)-7]
				}
			}
			return es
		}, "checksums.txt version 4: compressed block at byte 0"},
		{"a garbled checksums.txt", func(es []entry) []entry {
			for i := range es {
				if strings.HasSuffix(es[i].name, "/"+FileName) {
					es[i].data[len(es[i].data)-3] ^= 0xff
				}
			}
			return es
		}, "checksum"},
		{"no checksums.txt", func(es []entry) []entry {
			for i := range es {
				if strings.HasSuffix(es[i].name, "/"+FileName) {
					return append(es[:i], es[i+1:]...)
				}
			}
			return es
		}, "no checksums.txt in the archive"},
		{"an entry outside any part", func(es []entry) []entry {
			return append(es, entry{name: "stray.bin", data: []byte("x")})
		}, `archive entry "stray.bin" is not a file inside a part directory`},
	}
	for _, fx := range fixtures {
		for _, tc := range edits {
			t.Run(fx+"/"+tc.name, func(t *testing.T) {
				archive := writeTar(t, tc.edit(readFixture(t, fx)))
				err := CheckTar(context.Background(), bytes.NewReader(archive))
				if tc.want == "" {
					if err != nil {
						t.Fatalf("a pristine part failed: %v", err)
					}
					return
				}
				if err == nil {
					t.Fatalf("damage passed the check")
				}
				if !strings.Contains(err.Error(), tc.want) || (!strings.Contains(err.Error(), "part 202601_1_1_0") && !strings.Contains(err.Error(), "stray")) {
					t.Fatalf("error %q: want it to name part 202601_1_1_0 and say %q", err, tc.want)
				}
			})
		}
	}
}

// TestCheckTarParts: a second part is checked on its own, and a part whose files are split
// across the archive is refused (memory holds one part at a time).
func TestCheckTarParts(t *testing.T) {
	es := readFixture(t, "ch18-wide.tar")
	var second []entry
	for _, e := range es {
		e.name = strings.Replace(e.name, "202601_1_1_0", "202601_2_2_0", 1)
		e.data = bytes.Clone(e.data)
		second = append(second, e)
	}
	for i := range second {
		if strings.HasSuffix(second[i].name, "/s.bin") {
			second[i].data[10] ^= 1
		}
	}
	err := CheckTar(context.Background(), bytes.NewReader(writeTar(t, append(append([]entry{}, es...), second...))))
	if err == nil || !strings.Contains(err.Error(), "part 202601_2_2_0: file s.bin") || strings.Contains(err.Error(), "202601_1_1_0") {
		t.Fatalf("want only the second part's s.bin named, got %v", err)
	}
	split := append(append(append([]entry{}, es[:3]...), second[1]), es[3:]...)
	err = CheckTar(context.Background(), bytes.NewReader(writeTar(t, split)))
	if err == nil || !strings.Contains(err.Error(), "are not together") {
		t.Fatalf("want a split part refused, got %v", err)
	}
}

// TestHasherBlocks: the hash of a file does not depend on how it is written, and crosses the
// 2 KiB block boundaries like the server's (proved on real files by TestCheckTar).
func TestHasherBlocks(t *testing.T) {
	data := make([]byte, 3*hashBlock+17)
	for i := range data {
		data[i] = byte(i * 31)
	}
	var whole Hasher
	_, _ = whole.Write(data)
	for _, step := range []int{1, 7, hashBlock - 1, hashBlock, hashBlock + 1} {
		var h Hasher
		for p := data; len(p) > 0; {
			n := min(step, len(p))
			_, _ = h.Write(p[:n])
			p = p[n:]
		}
		if h.Sum() != whole.Sum() || h.Size() != uint64(len(data)) {
			t.Errorf("writes of %d bytes: %s, whole %s", step, Hex(h.Sum()), Hex(whole.Sum()))
		}
	}
	var empty Hasher
	if empty.Sum() != (city.U128{}) {
		t.Errorf("empty file hash %s, want zero", Hex(empty.Sum()))
	}
	var exact Hasher
	_, _ = exact.Write(data[:hashBlock])
	if exact.Sum() != city.CH128Seed(data[:hashBlock], city.U128{}) {
		t.Error("one full block is not CityHash128WithSeed(block, 0)")
	}
}

// encodeText and encodeBinary write checksums the way the server does, for the formats the
// fixtures lack (2, 3, and 4 with other methods).
func encodeText(c Checksums) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "checksums format version: 2\n%d files:\n", len(c))
	for _, n := range sortedNames(c) {
		s := c[n]
		fmt.Fprintf(&b, "%s\n\tsize: %d\n\thash: %d %d\n\tcompressed: %d", n, s.Size, s.Hash.Low, s.Hash.High, boolInt(s.Compressed))
		if s.Compressed {
			fmt.Fprintf(&b, "\n\tuncompressed size: %d\n\tuncompressed hash: %d %d", s.Uncompressed, s.UncompHash.Low, s.UncompHash.High)
		}
		b.WriteByte('\n')
	}
	return b.Bytes()
}

func encodeV3Body(c Checksums) []byte {
	var b []byte
	b = binary.AppendUvarint(b, uint64(len(c)))
	hash := func(h city.U128) {
		b = binary.LittleEndian.AppendUint64(b, h.Low)
		b = binary.LittleEndian.AppendUint64(b, h.High)
	}
	for _, n := range sortedNames(c) {
		s := c[n]
		b = binary.AppendUvarint(b, uint64(len(n)))
		b = append(b, n...)
		b = binary.AppendUvarint(b, s.Size)
		hash(s.Hash)
		b = append(b, byte(boolInt(s.Compressed)))
		if s.Compressed {
			b = binary.AppendUvarint(b, s.Uncompressed)
			hash(s.UncompHash)
		}
	}
	return b
}

// block wraps data in one ClickHouse compressed block of the given method.
func block(t testing.TB, method byte, data []byte) []byte {
	var payload []byte
	switch method {
	case methodNone:
		payload = data
	case methodLZ4:
		payload = make([]byte, lz4.CompressBlockBound(len(data)))
		n, err := lz4.CompressBlock(data, payload, nil)
		if err != nil || n == 0 {
			t.Fatalf("lz4: %d %v", n, err)
		}
		payload = payload[:n]
	case methodZSTD:
		enc, _ := zstd.NewWriter(nil)
		payload = enc.EncodeAll(data, nil)
	}
	h := []byte{method}
	h = binary.LittleEndian.AppendUint32(h, uint32(blockHeader+len(payload)))
	h = binary.LittleEndian.AppendUint32(h, uint32(len(data)))
	h = append(h, payload...)
	sum := city.CH128(h)
	out := binary.LittleEndian.AppendUint64(nil, sum.Low)
	out = binary.LittleEndian.AppendUint64(out, sum.High)
	return append(out, h...)
}

func sortedNames(c Checksums) []string {
	var n []string
	for k := range c {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// encodings returns the same checksums in every format Parse reads.
func encodings(t testing.TB, c Checksums) map[string][]byte {
	body := encodeV3Body(c)
	half := len(body) / 2
	v4 := func(blocks ...[]byte) []byte {
		return append([]byte(header+"4\n"), bytes.Join(blocks, nil)...)
	}
	return map[string][]byte{
		"v2 text":           encodeText(c),
		"v3 binary":         append([]byte(header+"3\n"), body...),
		"v4 none":           v4(block(t, methodNone, body)),
		"v4 lz4":            v4(block(t, methodLZ4, body)),
		"v4 zstd":           v4(block(t, methodZSTD, body)),
		"v4 two lz4 blocks": v4(block(t, methodLZ4, body[:half]), block(t, methodLZ4, body[half:])),
	}
}

func TestParseFormats(t *testing.T) {
	for _, fx := range fixtures {
		want, err := Parse(checksumsOf(t, readFixture(t, fx)))
		if err != nil {
			t.Fatalf("%s: %v", fx, err)
		}
		if len(want) < 5 {
			t.Fatalf("%s lists %d files", fx, len(want))
		}
		for name, data := range encodings(t, want) {
			got, err := Parse(data)
			if err != nil {
				t.Errorf("%s %s: %v", fx, name, err)
				continue
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s %s: parsed differently", fx, name)
			}
			for _, cut := range []int{1, len(data) / 2, len(data) - 1} {
				if _, err := Parse(data[:cut]); err == nil {
					t.Errorf("%s %s cut at %d of %d parsed", fx, name, cut, len(data))
				}
			}
		}
	}
	for _, bad := range []string{"", "checksums format version: 1\n", "checksums format version: 5\n", "checksums format version: x\n",
		"checksums format version: 2\n1 files:\nx\n\tsize: 1\n\thash: 1\n\tcompressed: 0\n"} {
		if _, err := Parse([]byte(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, fx := range fixtures {
		es := readFixture(f, fx)
		data := checksumsOf(f, es)
		f.Add(data)
		c, err := Parse(data)
		if err != nil {
			f.Fatal(err)
		}
		for _, enc := range encodings(f, c) {
			f.Add(enc)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			return
		}
		// What parses is what it says: written again and read back, it is the same.
		again, err := Parse(append([]byte(header+"3\n"), encodeV3Body(c)...))
		if err != nil || !reflect.DeepEqual(again, c) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

// FuzzCheckTar: a parts archive is untrusted too; a pristine one passes.
func FuzzCheckTar(f *testing.F) {
	for _, fx := range fixtures {
		raw, err := os.ReadFile("testdata/" + fx)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		_ = CheckTar(context.Background(), bytes.NewReader(data))
	})
}

// BenchmarkHasher: the cost the check adds to reading a parts tar (hashing every file).
func BenchmarkHasher(b *testing.B) {
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	b.SetBytes(int64(len(buf)))
	for i := 0; i < b.N; i++ {
		var h Hasher
		_, _ = h.Write(buf)
		_ = h.Sum()
	}
}
