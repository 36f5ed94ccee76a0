package blobs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tracevault/tracevault/snapshot"
	"github.com/tracevault/tracevault/snapshot/store"
)

// flaky is a container whose reads of some blobs fail as a live container's can.
type flaky struct {
	Container
	gone, broken string
}

var errCut = errors.New("connection reset by peer")

func (f flaky) Open(ctx context.Context, name string) (io.ReadCloser, Entry, error) {
	switch name {
	case f.gone:
		return nil, Entry{}, fmt.Errorf("read %s: %w", name, store.ErrNotFound)
	case f.broken:
		rc, e, err := f.Container.Open(ctx, name)
		if err != nil {
			return nil, e, err
		}
		return struct {
			io.Reader
			io.Closer
		}{io.MultiReader(io.LimitReader(rc, 100), errReader{}), rc}, e, nil
	}
	return f.Container.Open(ctx, name)
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errCut }

func TestBackupFailures(t *testing.T) {
	for _, tc := range []struct {
		name         string
		gone, broken string
		wantErr      string
		wantBlobs    int64
	}{
		{name: "a blob deleted after the listing is left out", gone: "b/0005", wantBlobs: 199},
		{name: "a small blob cut mid-read fails the source", broken: "b/0007", wantErr: errCut.Error()},
		{name: "a large blob cut mid-read fails the source", broken: "big", wantErr: errCut.Error()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			tmp := t.TempDir()
			dir, err := OpenContainer(ctx, "file://"+filepath.Join(tmp, "src"), Credentials{}, true)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 199 {
				put(t, dir, fmt.Sprintf("b/%04d", i), content(uint64(i), 300))
			}
			put(t, dir, "big", content(1, prefetchMax+10))
			repo, err := store.Open(ctx, store.Options{URL: "file://" + filepath.Join(tmp, "repo"), Log: quietLog()})
			if err != nil {
				t.Fatal(err)
			}
			src := &Source{URL: "file://" + filepath.Join(tmp, "src"), Workers: 2, PackSize: 1 << 20, Log: quietLog(),
				open: func(context.Context, string, Credentials, bool) (Container, error) {
					return flaky{Container: dir, gone: tc.gone, broken: tc.broken}, nil
				}}
			m, err := snapshot.Run(ctx, repo, []snapshot.Source{src}, snapshot.Options{Log: quietLog()})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(m.Error, tc.wantErr) || m.Status != store.StatusPartial {
					t.Fatalf("got %v (%s); want a partial snapshot naming %q", err, m.Error, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			_, sec, _ := listingOf(m)
			if sec.Blobs != tc.wantBlobs {
				t.Fatalf("%d blobs listed, want %d", sec.Blobs, tc.wantBlobs)
			}
		})
	}
}
