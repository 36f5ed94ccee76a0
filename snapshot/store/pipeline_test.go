package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// failingReader yields n bytes of data, then fails: a source that breaks mid-object.
type failingReader struct {
	data []byte
	err  error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if len(f.data) == 0 {
		return 0, f.err
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	return n, nil
}

// TestCodecWindowAndReuse stores objects one after another, so every one after the first is
// compressed by a reused encoder, including one after a stream that failed: each must read
// back whole, and its frame must declare the window its level gets and no checksum of its own;
// a document's frame keeps zstd's checksum.
func TestCodecWindowAndReuse(t *testing.T) {
	for _, tc := range []struct {
		level  int
		window uint64
	}{
		{1, 2 << 20},
		{5, 2 << 20},
		{6, 8 << 20},
		{10, 8 << 20},
	} {
		t.Run(zstd.EncoderLevelFromZstd(tc.level).String(), func(t *testing.T) {
			ctx := context.Background()
			b, err := NewFS(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			r := openRepo(t, b, Options{CompressionLevel: tc.level})
			for i := range uint64(3) {
				if i == 1 {
					broken := errors.New("source broke")
					_, _, err := r.PutObject(ctx, "", &failingReader{data: testData(1<<20, 40), err: broken})
					if !errors.Is(err, broken) {
						t.Fatalf("put from a failing source: %v, want %v", err, broken)
					}
				}
				data := testData(1<<20, 50+i)
				ref, _, err := r.PutObject(ctx, "", bytes.NewReader(data))
				if err != nil {
					t.Fatal(err)
				}
				if got := reader(t)(r.OpenObject(ctx, ref)); !bytes.Equal(got, data) {
					t.Fatalf("object %d read back differs", i)
				}
				stored := reader(t)(b.Get(ctx, ref.Name(), 0, -1))
				var h zstd.Header
				if err := h.Decode(stored); err != nil {
					t.Fatal(err)
				}
				if h.WindowSize != tc.window {
					t.Errorf("object %d: window %d, want %d", i, h.WindowSize, tc.window)
				}
				if h.HasCheckSum {
					t.Errorf("object %d carries a zstd checksum: its reference's SHA-256 already covers it", i)
				}
			}
			// Documents have no digest elsewhere: their frames keep zstd's checksum, also
			// when their encoder is a reused one.
			for i := range 2 {
				name := fmt.Sprintf("runs/doc-%d.json", i)
				if err := r.PutJSON(ctx, name, map[string]int{"run": i}); err != nil {
					t.Fatal(err)
				}
				var h zstd.Header
				if err := h.Decode(reader(t)(b.Get(ctx, name, 0, -1))); err != nil {
					t.Fatal(err)
				}
				if !h.HasCheckSum {
					t.Errorf("document %s carries no zstd checksum", name)
				}
			}
		})
	}
}
