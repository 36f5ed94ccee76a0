package store

import (
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/tracevault/tracevault/internal/devstack"
)

// backendCase opens a fresh, empty backend of one kind for a test.
type backendCase struct {
	name string
	open func(t testing.TB, o AzureOptions) Backend
}

var backendCases = []backendCase{
	{"fs", func(t testing.TB, _ AzureOptions) Backend {
		b, err := NewFS(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return b
	}},
	{"azurite", openAzurite},
}

// openAzurite opens a fresh container on the stack's Azurite, removed after the test. Without a
// stack it skips (fails under CI), like every integration test.
func openAzurite(t testing.TB, o AzureOptions) Backend {
	t.Helper()
	env := devstack.Require(t)
	o.ConnectionString = env.AzureConnectionString
	o.Container = strings.ReplaceAll(strings.ToLower(devstack.ScratchName("it")), "_", "-")
	o.Prefix = "repo"
	b, err := NewAzure(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, err := container.NewClientFromConnectionString(env.AzureConnectionString, o.Container, nil)
		if err == nil {
			_, _ = c.Delete(context.Background(), nil)
		}
	})
	return b
}

func openRepo(t testing.TB, b Backend, opts Options) *Repository {
	t.Helper()
	if opts.Log == nil {
		opts.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	r, err := OpenBackend(context.Background(), b, opts)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// testData is half random, half repetitive: realistic for compressed columnar data.
func testData(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := mrand.New(mrand.NewPCG(seed, 1))
	for i := 0; i < n; i += 4096 {
		end := min(i+4096, n)
		if (i/4096)%2 == 0 {
			for j := i; j < end; j++ {
				b[j] = byte(r.Uint32())
			}
		} else {
			copy(b[i:end], strings.Repeat("trace observation score ", 200))
		}
	}
	return b
}

// randomReader streams n pseudo-random bytes without holding them.
type randomReader struct{ left int64 }

func (r *randomReader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	_, _ = rand.Read(p)
	r.left -= int64(len(p))
	return len(p), nil
}

// reader returns a function that reads a whole (reader, error) pair, failing the test on error,
// so a Get or OpenObject call can be passed to it directly.
func reader(t testing.TB) func(io.ReadCloser, error) []byte {
	return func(rc io.ReadCloser, err error) []byte {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
}

func TestMain(m *testing.M) {
	if os.Getenv(crashChildEnv) != "" {
		crashChild()
		return
	}
	os.Exit(m.Run())
}
