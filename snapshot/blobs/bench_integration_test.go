package blobs

import (
	"bufio"
	"bytes"
	"context"
	"crypto/md5"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/tracevault/tracevault/internal/devstack"
	"github.com/tracevault/tracevault/snapshot/store"
)

// BenchmarkBlobs measures a container of TRACEVAULT_BENCH_BLOBS (default 100,000) small blobs,
// 200 B to 2 KiB like Langfuse's events, on a directory and on Azurite: the first backup (list,
// read, pack), the second of the unchanged container (list only, 0 bytes read) and a restore into
// an empty target (unless TRACEVAULT_BENCH_SKIP_RESTORE is set); rates and the process's peak RSS
// during each phase. Run it alone:
//
//	go test -run '^$' -bench BenchmarkBlobs -benchtime 1x ./snapshot/blobs/
func BenchmarkBlobs(b *testing.B) {
	n := 100_000
	if v, err := strconv.Atoi(os.Getenv("TRACEVAULT_BENCH_BLOBS")); err == nil && v > 0 {
		n = v
	}
	b.Run("dir", func(b *testing.B) {
		dir := b.TempDir()
		c, err := OpenContainer(context.Background(), "file://"+dir+"/src", Credentials{}, true)
		if err != nil {
			b.Fatal(err)
		}
		benchContainer(b, c, "file://"+dir+"/src", Credentials{}, "file://"+dir+"/dst", n)
	})
	b.Run("azurite", func(b *testing.B) {
		env := devstack.Require(b)
		name, c := azuriteContainer(b, env, "benchsrc")
		dst, _ := azuriteContainer(b, env, "benchdst")
		cred := Credentials{ConnectionString: env.AzureConnectionString}
		benchContainer(b, c, "azblob://"+name, cred, "azblob://"+dst, n)
	})
}

func benchContainer(b *testing.B, c Container, srcURL string, cred Credentials, dstURL string, n int) {
	ctx := context.Background()
	var total int64
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(32)
	for i := range n {
		size := 200 + (i*7919)%1848
		total += int64(size)
		g.Go(func() error {
			data := content(uint64(i), size)
			sum := md5.Sum(data)
			return c.Put(gctx, fmt.Sprintf("proj-%02d/traces/%08d.json", i%17, i), int64(size), sum[:], bytes.NewReader(data))
		})
	}
	if err := g.Wait(); err != nil {
		b.Fatal(err)
	}
	repo, err := store.Open(ctx, store.Options{URL: "file://" + b.TempDir(), Log: quietLog()})
	if err != nil {
		b.Fatal(err)
	}
	// The defaults of [blobs]: 4 workers, 32 MiB packs.
	s := scenario{src: c, srcURL: srcURL, cred: cred, repo: repo, workers: 4, packSize: 32 << 20}
	phase := func(name string, run func() int64) {
		resetPeakRSS()
		stop := profileHeap(b, name)
		// CPU seconds the kernel charged, not wall time: the machine's load moves the rates,
		// not these. GC's share shows what a smaller heap costs in collections.
		gc := []metrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}, {Name: "/gc/cycles/total:gc-cycles"}}
		metrics.Read(gc)
		cpu0, gc0, cycles0 := cpuSeconds(), gc[0].Value.Float64(), gc[1].Value.Uint64()
		start := time.Now()
		bytes := run()
		stop()
		secs := time.Since(start).Seconds()
		metrics.Read(gc)
		b.ReportMetric(cpuSeconds()-cpu0, name+"-cpu-s")
		b.ReportMetric(gc[0].Value.Float64()-gc0, name+"-gc-cpu-s")
		b.ReportMetric(float64(gc[1].Value.Uint64()-cycles0), name+"-gcs")
		b.ReportMetric(float64(n)/secs, name+"-blobs/s")
		b.ReportMetric(float64(bytes)/secs/(1<<20), name+"-MiB/s")
		b.ReportMetric(float64(peakRSS())/(1<<20), name+"-peakRSS-MiB")
	}
	var m1Bytes int64
	phase("full", func() int64 {
		m, sec := backup(b, s)
		var stored int64
		for _, o := range m.Objects {
			stored += o.Size
		}
		b.ReportMetric(float64(stored)/(1<<20), "stored-MiB")
		if sec.Blobs != int64(n) || sec.NewBytes != total {
			b.Fatalf("full backup: %+v, want %d blobs, %d bytes", sec, n, total)
		}
		m1Bytes = sec.NewBytes
		return sec.NewBytes
	})
	phase("unchanged", func() int64 {
		_, sec := backup(b, s)
		if sec.NewBytes != 0 || sec.Blobs != int64(n) {
			b.Fatalf("unchanged backup read %d bytes", sec.NewBytes)
		}
		return m1Bytes // listed, not read: the rate of covering the container's bytes
	})
	if os.Getenv("TRACEVAULT_BENCH_SKIP_RESTORE") != "" {
		return // restoring 10^6 blobs (two fsyncs each) takes most of an hour
	}
	phase("restore", func() int64 {
		m, err := repo.Snapshot(ctx, "latest")
		if err != nil {
			b.Fatal(err)
		}
		rep, err := Restore(ctx, repo, m, RestoreOptions{URL: dstURL, Credentials: cred, Log: quietLog()})
		if err != nil || rep.Written != int64(n) {
			b.Fatalf("restore: %+v, %v", rep, err)
		}
		return rep.Bytes
	})
}

// profileHeap, when TRACEVAULT_BENCH_HEAPPROFILE names a directory, writes the heap profile
// taken when the phase's live heap was largest to DIR/NAME.heap (go tool pprof -sample_index
// inuse_space), so a peak can be traced to its allocations, not guessed at.
func profileHeap(b *testing.B, name string) (stop func()) {
	dir := os.Getenv("TRACEVAULT_BENCH_HEAPPROFILE")
	if dir == "" {
		return func() {}
	}
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		var best bytes.Buffer
		var most uint64
		sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				if err := os.WriteFile(filepath.Join(dir, name+".heap"), best.Bytes(), 0o644); err != nil {
					b.Error(err)
				}
				b.ReportMetric(float64(most)/(1<<20), name+"-liveheap-MiB")
				return
			case <-tick.C:
			}
			metrics.Read(sample)
			if live := sample[0].Value.Uint64(); live > most {
				most = live
				best.Reset()
				_ = pprof.Lookup("heap").WriteTo(&best, 0)
			}
		}
	}()
	return func() { close(done); <-finished }
}

// cpuSeconds is the user and system time this process has used.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// resetPeakRSS returns the previous phase's memory to the system, then restarts the kernel's
// high-water mark of this process's resident set, so a phase's peak is its own.
func resetPeakRSS() {
	debug.FreeOSMemory()
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// peakRSS is VmHWM: the most resident memory since the last reset.
func peakRSS() int64 {
	f, err := os.Open(filepath.Join("/proc", "self", "status"))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
