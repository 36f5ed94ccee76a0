package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
)

// failingSource gives data, then fails with err.
type failingSource struct {
	data *bytes.Reader
	err  error
}

func (f *failingSource) Read(p []byte) (int, error) {
	if f.data.Len() == 0 {
		return 0, f.err
	}
	return f.data.Read(p)
}

// TestWritesFailWhenTheSourceFails: a source that fails part-way fails the write, and nothing
// is left under the name, even where the source's error wraps io.EOF. The Azure SDK's upload
// takes any error that wraps io.EOF for the data's end (errors.Is) and commits what it read:
// an export whose HTTP request failed with "EOF" (a server killed as it answered) was stored
// empty, under its partition's fingerprint, and reused by the next "complete" snapshot
// (TestChaosModern in CI, 2026-12-07).
func TestWritesFailWhenTheSourceFails(t *testing.T) {
	ctx := context.Background()
	for _, bc := range backendCases {
		for _, cause := range []struct {
			name string
			err  error
		}{
			{"an error wrapping io.EOF", fmt.Errorf("clickhouse http: Post: %w", io.EOF)},
			{"a connection reset", errors.New("read: connection reset by peer")},
		} {
			for _, size := range []int{0, 300 << 10} {
				t.Run(fmt.Sprintf("%s/%s/%d bytes first", bc.name, cause.name, size), func(t *testing.T) {
					b := bc.open(t, AzureOptions{BlockSize: 64 << 10})
					source := func() io.Reader { return &failingSource{bytes.NewReader(testData(size, 3)), cause.err} }
					for _, w := range []struct {
						op    string
						write func(name string) error
					}{
						{"put", func(name string) error { _, err := b.Put(ctx, name, source()); return err }},
						{"create", func(name string) error { _, err := b.Create(ctx, name, source()); return err }},
						{"put object", func(string) error {
							_, _, err := openRepo(t, b, Options{}).PutObject(ctx, "fp", source())
							return err
						}},
					} {
						name := "data/ab/" + w.op
						err := w.write(name)
						if !errors.Is(err, cause.err) {
							t.Errorf("%s: %v; want the source's error", w.op, err)
						}
						if _, err := b.Stat(ctx, name); !errors.Is(err, ErrNotFound) {
							t.Errorf("%s: stat after the failed write: %v; want not found", w.op, err)
						}
					}
					var left []string
					if err := b.List(ctx, "data/", func(o ObjectInfo) error { left = append(left, o.Name); return nil }); err != nil {
						t.Fatal(err)
					}
					if len(left) > 0 {
						t.Errorf("failed writes left objects behind: %v", left)
					}
				})
			}
		}
	}
}
