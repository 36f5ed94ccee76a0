package blobs

import (
	"bytes"
	"crypto/md5"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

func TestListingRoundTrip(t *testing.T) {
	recs := []Record{
		{Name: "a", MD5: md5.Sum(nil), Modified: time.Unix(0, 1).UTC()},
		{Name: "a/b\tc\n%", Size: 5, MD5: md5.Sum([]byte("x")), ETag: "0x8D\x01", Modified: time.Unix(1700000000, 5).UTC(), Pack: strings.Repeat("ab", 16), Offset: 7},
		{Name: "é/ü", Size: 1, ETag: "e", Modified: time.Unix(-5, 0).UTC(), Pack: strings.Repeat("0f", 16)},
	}
	var buf bytes.Buffer
	lw, err := NewListingWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if err := lw.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := lw.Write(recs[0]); err == nil {
		t.Fatal("a name out of order was written")
	}
	if err := lw.Close(); err != nil {
		t.Fatal(err)
	}
	if strings.Count(buf.String(), "\n") != len(recs)+1 {
		t.Fatalf("escaping left a raw newline:\n%s", buf.String())
	}
	lr, err := NewListingReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range recs {
		got, err := lr.Next()
		if err != nil || got != want {
			t.Fatalf("read %+v, %v; want %+v", got, err, want)
		}
	}
	if _, err := lr.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the last record: %v", err)
	}
}

func TestListingRejects(t *testing.T) {
	pack := strings.Repeat("a", 32)
	sum := strings.Repeat("0", 32)
	for _, tc := range []struct{ name, body string }{
		{"no header", "x\n"},
		{"fields", "a\t1\n"},
		{"negative size", "a\t-1\t" + sum + "\te\t0\t" + pack + "\t0"},
		{"leading zero", "a\t01\t" + sum + "\te\t0\t" + pack + "\t0"},
		{"uppercase md5", "a\t1\t" + strings.Repeat("A", 32) + "\te\t0\t" + pack + "\t0"},
		{"bad pack", "a\t1\t" + sum + "\te\t0\t../../x\t0"},
		{"empty with pack", "a\t0\t" + sum + "\te\t0\t" + pack + "\t0"},
		{"raw control", "a\x01\t1\t" + sum + "\te\t0\t" + pack + "\t0"},
		{"lowercase escape", "a%0a\t1\t" + sum + "\te\t0\t" + pack + "\t0"},
		{"needless escape", "a%41\t1\t" + sum + "\te\t0\t" + pack + "\t0"},
		{"truncated escape", "a%0\t1\t" + sum + "\te\t0\t" + pack + "\t0"},
		{"unsorted", "b\t1\t" + sum + "\te\t0\t" + pack + "\t0\na\t1\t" + sum + "\te\t0\t" + pack + "\t0"},
		{"duplicate", "b\t1\t" + sum + "\te\t0\t" + pack + "\t0\nb\t1\t" + sum + "\te\t0\t" + pack + "\t1"},
		{"overflow", "a\t9223372036854775807\t" + sum + "\te\t0\t" + pack + "\t9223372036854775807"},
		{"too long", strings.Repeat("a", maxLine+1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := tc.body
			if tc.name != "no header" {
				body = listingHeader + "\n" + body
			}
			lr, err := NewListingReader(strings.NewReader(body))
			for err == nil {
				_, err = lr.Next()
			}
			if errors.Is(err, io.EOF) {
				t.Fatalf("accepted %q", tc.body)
			}
		})
	}
}

// FuzzListing: any bytes either fail to parse or parse into records that write back to the
// same records.
func FuzzListing(f *testing.F) {
	f.Add([]byte(listingHeader + "\na\t0\t" + strings.Repeat("0", 32) + "\t\t0\t-\t0\n"))
	f.Add([]byte(listingHeader + "\na%09b\t3\t" + strings.Repeat("ab", 16) + "\t%25\t-9\t" + strings.Repeat("c", 32) + "\t4\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		lr, err := NewListingReader(bytes.NewReader(data))
		if err != nil {
			return
		}
		var recs []Record
		for {
			r, err := lr.Next()
			if err != nil {
				break
			}
			recs = append(recs, r)
		}
		var buf bytes.Buffer
		lw, _ := NewListingWriter(&buf)
		for _, r := range recs {
			if err := lw.Write(r); err != nil {
				t.Fatalf("a parsed record does not write back: %+v: %v", r, err)
			}
		}
		_ = lw.Close()
		again, _ := NewListingReader(&buf)
		for _, want := range recs {
			if got, err := again.Next(); err != nil || got != want {
				t.Fatalf("round trip: %+v, %v; want %+v", got, err, want)
			}
		}
	})
}
