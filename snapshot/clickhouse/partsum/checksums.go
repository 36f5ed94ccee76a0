// Package partsum checks ClickHouse data parts against their own checksums.txt: the sizes and
// CityHash128 hashes the server recorded when it wrote each file. tracevault reads freeze-mode
// objects (tars of part directories) through it, so corruption that happened on the server's
// disk before the upload, which the object's SHA-256 cannot see, is named by part and file.
//
// Everything here reads untrusted bytes: a damaged or hostile checksums.txt is an error, never a
// panic or an allocation sized by the input.
package partsum

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/go-faster/city"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// FileName is the name of the checksums file in a part directory.
const FileName = "checksums.txt"

// MaxSize bounds a checksums.txt, raw and decompressed. A part with thousands of columns lists
// a few hundred KiB; beyond this the file is not one the server wrote.
const MaxSize = 64 << 20

// Checksum is what the server recorded for one file of a part. Hash is the file as stored on
// disk; the uncompressed size and hash (of a .bin file's decompressed stream) are not checked
// here, since the file's own hash already covers every byte.
type Checksum struct {
	Size         uint64
	Hash         city.U128
	Compressed   bool
	Uncompressed uint64
	UncompHash   city.U128
}

// Checksums are a part's files by name (relative to the part directory). A projection appears
// as one entry "<name>.proj" whose directory has a checksums.txt of its own.
type Checksums map[string]Checksum

const header = "checksums format version: "

// Parse reads a checksums.txt in any format the servers tracevault supports write: the text
// format version 2 and the binary versions 3 and 4 (4 is 3 inside ClickHouse compressed blocks).
func Parse(data []byte) (Checksums, error) {
	if len(data) > MaxSize {
		return nil, fmt.Errorf("checksums.txt is %d bytes, more than the %d a server writes", len(data), MaxSize)
	}
	rest, ok := bytes.CutPrefix(data, []byte(header))
	if !ok {
		return nil, fmt.Errorf("checksums.txt does not start with %q", header)
	}
	nl := bytes.IndexByte(rest, '\n')
	if nl < 0 || nl > 3 {
		return nil, errors.New("checksums.txt has no format version line")
	}
	version, err := strconv.Atoi(string(rest[:nl]))
	if err != nil {
		return nil, fmt.Errorf("checksums.txt format version %q is not a number", rest[:nl])
	}
	body := rest[nl+1:]
	switch version {
	case 2:
		return parseText(body)
	case 3:
		return parseBinary(body)
	case 4:
		raw, err := decompress(body)
		if err != nil {
			return nil, fmt.Errorf("checksums.txt version 4: %w", err)
		}
		return parseBinary(raw)
	default:
		return nil, fmt.Errorf("checksums.txt format version %d is not one tracevault reads (2, 3 or 4)", version)
	}
}

// parseText reads version 2:
//
//	<n> files:
//	<name>
//		size: <n>
//		hash: <lo> <hi>
//		compressed: 0|1
//		uncompressed size: <n>      (if compressed)
//		uncompressed hash: <lo> <hi> (if compressed)
func parseText(body []byte) (Checksums, error) {
	if len(body) == 0 || body[len(body)-1] != '\n' {
		return nil, errors.New("checksums.txt version 2 is truncated: it does not end with a line break")
	}
	s := bufio.NewScanner(bytes.NewReader(body))
	s.Buffer(nil, MaxSize)
	line := 0
	next := func() (string, bool) {
		if !s.Scan() {
			return "", false
		}
		line++
		return s.Text(), true
	}
	fail := func(format string, args ...any) error {
		return fmt.Errorf("checksums.txt version 2, line %d: %s", line+1, fmt.Sprintf(format, args...))
	}
	first, _ := next()
	countText, ok := strings.CutSuffix(first, " files:")
	if !ok {
		return nil, fail("want \"<n> files:\", got %.40q", first)
	}
	count, err := strconv.ParseUint(countText, 10, 64)
	if err != nil {
		return nil, fail("file count %.20q is not a number", countText)
	}
	out := Checksums{}
	field := func(key string) (string, error) {
		l, ok := next()
		if !ok {
			return "", fail("ends before %q", key)
		}
		v, ok := strings.CutPrefix(l, "\t"+key+": ")
		if !ok {
			return "", fail("want %q, got %.40q", key, l)
		}
		return v, nil
	}
	num := func(key string) (uint64, error) {
		v, err := field(key)
		if err != nil {
			return 0, err
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, fail("%s %.30q is not a number", key, v)
		}
		return n, nil
	}
	hash := func(key string) (city.U128, error) {
		v, err := field(key)
		if err != nil {
			return city.U128{}, err
		}
		lo, hi, ok := strings.Cut(v, " ")
		l, err1 := strconv.ParseUint(lo, 10, 64)
		h, err2 := strconv.ParseUint(hi, 10, 64)
		if !ok || err1 != nil || err2 != nil {
			return city.U128{}, fail("%s %.50q is not two numbers", key, v)
		}
		return city.U128{Low: l, High: h}, nil
	}
	for i := uint64(0); i < count; i++ {
		name, ok := next()
		if !ok {
			return nil, fail("ends after %d of %d files", i, count)
		}
		if err := checkName(name); err != nil {
			return nil, fail("%v", err)
		}
		var c Checksum
		if c.Size, err = num("size"); err != nil {
			return nil, err
		}
		if c.Hash, err = hash("hash"); err != nil {
			return nil, err
		}
		compressed, err := field("compressed")
		if err != nil {
			return nil, err
		}
		switch compressed {
		case "0":
		case "1":
			c.Compressed = true
			if c.Uncompressed, err = num("uncompressed size"); err != nil {
				return nil, err
			}
			if c.UncompHash, err = hash("uncompressed hash"); err != nil {
				return nil, err
			}
		default:
			return nil, fail("compressed is %.10q, not 0 or 1", compressed)
		}
		if _, dup := out[name]; dup {
			return nil, fail("file %q is listed twice", name)
		}
		out[name] = c
	}
	if err := s.Err(); err != nil {
		return nil, fail("%v", err)
	}
	if l, ok := next(); ok {
		return nil, fail("unexpected %.40q after the last file", l)
	}
	return out, nil
}

// parseBinary reads version 3: a varint count, then per file its name (varint length and
// bytes), varint size, 16-byte hash, a compressed flag byte and, if set, the varint
// uncompressed size and 16-byte uncompressed hash.
func parseBinary(body []byte) (Checksums, error) {
	r := bytes.NewReader(body)
	fail := func(format string, args ...any) error {
		return fmt.Errorf("checksums.txt binary, at byte %d: %s", len(body)-r.Len(), fmt.Sprintf(format, args...))
	}
	count, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, fail("file count: %v", eof(err))
	}
	out := Checksums{}
	for i := uint64(0); i < count; i++ {
		n, err := binary.ReadUvarint(r)
		if err != nil {
			return nil, fail("name length of file %d: %v", i, eof(err))
		}
		if n > uint64(r.Len()) {
			return nil, fail("file %d's name is %d bytes, more than the %d left", i, n, r.Len())
		}
		nameBytes := make([]byte, n)
		_, _ = io.ReadFull(r, nameBytes) // r holds at least n bytes
		name := string(nameBytes)
		if err := checkName(name); err != nil {
			return nil, fail("%v", err)
		}
		var c Checksum
		if c.Size, err = binary.ReadUvarint(r); err != nil {
			return nil, fail("size of %q: %v", name, eof(err))
		}
		if c.Hash, err = readHash(r); err != nil {
			return nil, fail("hash of %q: %v", name, eof(err))
		}
		flag, err := r.ReadByte()
		if err != nil {
			return nil, fail("compressed flag of %q: %v", name, eof(err))
		}
		switch flag {
		case 0:
		case 1:
			c.Compressed = true
			if c.Uncompressed, err = binary.ReadUvarint(r); err != nil {
				return nil, fail("uncompressed size of %q: %v", name, eof(err))
			}
			if c.UncompHash, err = readHash(r); err != nil {
				return nil, fail("uncompressed hash of %q: %v", name, eof(err))
			}
		default:
			return nil, fail("compressed flag of %q is %d, not 0 or 1", name, flag)
		}
		if _, dup := out[name]; dup {
			return nil, fail("file %q is listed twice", name)
		}
		out[name] = c
	}
	if r.Len() > 0 {
		return nil, fail("%d bytes after the last of %d files", r.Len(), count)
	}
	return out, nil
}

func checkName(name string) error {
	if name == "" || len(name) > 4096 {
		return fmt.Errorf("file name of %d bytes", len(name))
	}
	return nil
}

func readHash(r io.Reader) (city.U128, error) {
	var b [16]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return city.U128{}, err
	}
	return city.U128{Low: binary.LittleEndian.Uint64(b[:8]), High: binary.LittleEndian.Uint64(b[8:])}, nil
}

// eof says "truncated" for the end of the data, which is what it means in a parse.
func eof(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("truncated")
	}
	return err
}

// Compression methods of a ClickHouse compressed block.
const (
	methodNone = 0x02
	methodLZ4  = 0x82
	methodZSTD = 0x90
)

// blockHeader is the method byte and the two sizes that follow a block's checksum; the
// compressed size counts these 9 bytes too.
const blockHeader = 9

var zstdDecoder, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(MaxSize))

// decompress reads a sequence of ClickHouse compressed blocks (as CompressedReadBuffer does):
// each a 16-byte CityHash128 of the rest of the block, the method, the compressed size
// (header included) and the uncompressed size, both little-endian uint32, then the data.
func decompress(data []byte) ([]byte, error) {
	var out []byte
	for off := 0; off < len(data); {
		if len(data)-off < 16+blockHeader {
			return nil, fmt.Errorf("compressed block at byte %d: truncated header", off)
		}
		want := city.U128{Low: binary.LittleEndian.Uint64(data[off:]), High: binary.LittleEndian.Uint64(data[off+8:])}
		h := data[off+16:]
		method := h[0]
		csize := int64(binary.LittleEndian.Uint32(h[1:]))
		usize := int64(binary.LittleEndian.Uint32(h[5:]))
		if csize < blockHeader || csize > int64(len(h)) {
			return nil, fmt.Errorf("compressed block at byte %d: compressed size %d does not fit the %d bytes left", off, csize, len(h))
		}
		if usize > MaxSize-int64(len(out)) {
			return nil, fmt.Errorf("compressed block at byte %d: uncompressed size %d exceeds %d bytes", off, usize, MaxSize)
		}
		block := h[:csize]
		if got := city.CH128(block); got != want {
			return nil, fmt.Errorf("compressed block at byte %d: checksum %s, the block says %s", off, Hex(got), Hex(want))
		}
		payload := block[blockHeader:]
		var plain []byte
		switch method {
		case methodNone:
			if int64(len(payload)) != usize {
				return nil, fmt.Errorf("uncompressed block at byte %d holds %d bytes, its header says %d", off, len(payload), usize)
			}
			plain = payload
		case methodLZ4:
			// LZ4 expands at most 255-fold: a larger claim is not worth allocating for.
			if usize > 255*int64(len(payload))+16 {
				return nil, fmt.Errorf("lz4 block at byte %d claims %d bytes from %d", off, usize, len(payload))
			}
			plain = make([]byte, usize)
			n, err := lz4.UncompressBlock(payload, plain)
			if err != nil || int64(n) != usize {
				return nil, fmt.Errorf("lz4 block at byte %d: %d of %d bytes (%v)", off, n, usize, err)
			}
		case methodZSTD:
			got, err := zstdDecoder.DecodeAll(payload, nil)
			if err != nil || int64(len(got)) != usize {
				return nil, fmt.Errorf("zstd block at byte %d: %d of %d bytes (%v)", off, len(got), usize, err)
			}
			plain = got
		default:
			return nil, fmt.Errorf("compressed block at byte %d: method 0x%02x is not none, lz4 or zstd", off, method)
		}
		out = append(out, plain...)
		off += 16 + int(csize)
	}
	return out, nil
}

// Hex writes a hash as ClickHouse prints a part's checksums (hex of the 16 little-endian bytes).
func Hex(h city.U128) string {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], h.Low)
	binary.LittleEndian.PutUint64(b[8:], h.High)
	return fmt.Sprintf("%x", b)
}
