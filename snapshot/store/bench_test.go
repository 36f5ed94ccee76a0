package store

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"

	"github.com/tracevault/tracevault/internal/devstack"
)

const benchSize = 256 << 20

// patternReader streams n bytes of testData's mix by repeating a 16 MiB block, so benchmarks
// don't hold their input.
type patternReader struct {
	block []byte
	off   int
	left  int64
}

func newPatternReader(n int64) *patternReader {
	return &patternReader{block: testData(16<<20, 99), left: n}
}

func (p *patternReader) Read(b []byte) (int, error) {
	if p.left <= 0 {
		return 0, io.EOF
	}
	n := copy(b[:min(int64(len(b)), p.left)], p.block[p.off:])
	p.off = (p.off + n) % len(p.block)
	p.left -= int64(n)
	return n, nil
}

// BenchmarkPut compares our pipeline (sha256 + zstd level 1, no encryption) with the baseline
// of each backend: a plain file copy + fsync, and the raw azblob UploadStream with the same
// block size and concurrency. Target: pipeline within 1.2x the baseline's time.
func BenchmarkPut(b *testing.B) {
	for _, bc := range backendCases {
		b.Run(bc.name+"/pipeline", func(b *testing.B) {
			backend := bc.open(b, AzureOptions{BlockSize: 8 << 20, Concurrency: 4})
			r := openRepo(b, backend, Options{CompressionLevel: 1})
			b.SetBytes(benchSize)
			for i := 0; i < b.N; i++ {
				if _, _, err := r.PutObject(context.Background(), "", newPatternReader(benchSize)); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(bc.name+"/baseline", func(b *testing.B) {
			backend := bc.open(b, AzureOptions{BlockSize: 8 << 20, Concurrency: 4})
			b.SetBytes(benchSize)
			for i := 0; i < b.N; i++ {
				if err := baselinePut(backend, fmt.Sprint("baseline-", i)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func baselinePut(backend Backend, name string) error {
	switch be := backend.(type) {
	case *FS:
		f, err := os.Create(filepath.Join(be.root, name))
		if err != nil {
			return err
		}
		defer f.Close()
		if _, err := io.Copy(f, newPatternReader(benchSize)); err != nil {
			return err
		}
		return f.Sync()
	case *Azure:
		_, err := be.c.NewBlockBlobClient(be.blob(name)).UploadStream(context.Background(), newPatternReader(benchSize),
			&blockblob.UploadStreamOptions{BlockSize: be.opts.BlockSize, Concurrency: be.opts.Concurrency})
		return err
	}
	return fmt.Errorf("no baseline for %T", backend)
}

// BenchmarkGet reads an object back through the pipeline (checksum verified) versus a raw read.
func BenchmarkGet(b *testing.B) {
	for _, bc := range backendCases {
		backend := bc.open(b, AzureOptions{BlockSize: 8 << 20, Concurrency: 4})
		r := openRepo(b, backend, Options{CompressionLevel: 1})
		ref, _, err := r.PutObject(context.Background(), "", newPatternReader(benchSize))
		if err != nil {
			b.Fatal(err)
		}
		if err := baselinePut(backend, "raw"); err != nil {
			b.Fatal(err)
		}
		b.Run(bc.name+"/pipeline", func(b *testing.B) {
			b.SetBytes(benchSize)
			for i := 0; i < b.N; i++ {
				rc, err := r.OpenObject(context.Background(), ref)
				if err == nil {
					_, err = io.Copy(io.Discard, rc)
					rc.Close()
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(bc.name+"/baseline", func(b *testing.B) {
			b.SetBytes(benchSize)
			for i := 0; i < b.N; i++ {
				rc, err := backend.Get(context.Background(), "raw", 0, -1)
				if err == nil {
					_, err = io.Copy(io.Discard, rc)
					rc.Close()
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

const roundTripChildEnv = "TRACEVAULT_TEST_ROUNDTRIP"

// BenchmarkRoundTrip1GiB puts and reads back 1 GiB of random data in a child process and
// reports the child's peak RSS, measured by the kernel. Target: under 256 MiB.
func BenchmarkRoundTrip1GiB(b *testing.B) {
	for _, kind := range []string{"fs", "azurite"} {
		b.Run(kind, func(b *testing.B) {
			if kind == "azurite" {
				devstack.Require(b)
			}
			env := append(os.Environ(), "TRACEVAULT_TEST_DIR="+b.TempDir())
			b.SetBytes(1 << 30)
			for i := 0; i < b.N; i++ {
				cmd := exec.Command(os.Args[0], "-test.run=^TestRoundTripChild$", "-test.v")
				cmd.Env = append(env, roundTripChildEnv+"="+kind)
				out, err := cmd.CombinedOutput()
				if err != nil {
					b.Fatalf("child: %v\n%s", err, out)
				}
				maxRSS := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss // KiB on Linux
				b.ReportMetric(float64(maxRSS)/1024, "peak-RSS-MiB")
				if maxRSS > 256<<10 {
					b.Errorf("peak RSS %d MiB over 256 MiB", maxRSS>>10)
				}
			}
		})
	}
}

// TestRoundTripChild is the child of BenchmarkRoundTrip1GiB; it does nothing in a normal run.
func TestRoundTripChild(t *testing.T) {
	kind := os.Getenv(roundTripChildEnv)
	if kind == "" {
		t.Skip("runs only as the child of BenchmarkRoundTrip1GiB")
	}
	var backend Backend
	if kind == "fs" {
		backend, _ = NewFS(os.Getenv("TRACEVAULT_TEST_DIR"))
	} else {
		backend = openAzurite(t, AzureOptions{})
	}
	r := openRepo(t, backend, Options{})
	ref, _, err := r.PutObject(context.Background(), "", &randomReader{left: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	rc, err := r.OpenObject(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, rc)
	rc.Close()
	if err != nil || n != 1<<30 {
		t.Fatalf("read back %d bytes: %v", n, err)
	}
	fmt.Println("round trip ok, sha256", ref.SHA256[:12], "stored", strconv.FormatInt(ref.Size, 10))
}
