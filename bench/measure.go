package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// sample is one timed run of one side of a step.
type sample struct {
	Wall   time.Duration
	CPU    time.Duration // user+sys of the command and every child it waited for
	RSS    int64         // peak resident set of the largest process in the command's tree
	Server time.Duration // CPU the stack's ClickHouse servers spent meanwhile
	Busy   float64       // fraction of the machine's cores busy meanwhile (every process, other users too)
	Bytes  int64         // bytes the run stored or sent, where the step counts them
}

// clockTicks is USER_HZ, the unit of /proc's CPU times; 100 on every Linux this runs on.
const clockTicks = 100

// probe samples what a run cannot measure from its own process: the machine's busy time and
// the CPU of the ClickHouse servers, which do half the work of every ClickHouse step.
type probe struct {
	servers []int // pids of the stack's clickhouse-server processes
}

// newProbe finds the ClickHouse servers of the stack in dir by their command lines.
func newProbe(stackDir string) *probe {
	p := &probe{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmd, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		line := string(bytes.ReplaceAll(cmd, []byte{0}, []byte{' '}))
		if strings.Contains(line, "clickhouse") && strings.Contains(line, "server") && strings.Contains(line, stackDir) {
			p.servers = append(p.servers, pid)
		}
	}
	return p
}

type reading struct {
	busy, total uint64 // machine jiffies from /proc/stat
	server      uint64 // servers' utime+stime ticks
}

func (p *probe) read() reading {
	var r reading
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		for i, f := range strings.Fields(line)[1:] {
			v, _ := strconv.ParseUint(f, 10, 64)
			r.total += v
			if i != 3 && i != 4 { // idle, iowait
				r.busy += v
			}
		}
	}
	for _, pid := range p.servers {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// Fields after the command name, which is in parentheses and may hold spaces.
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		if len(f) > 12 {
			u, _ := strconv.ParseUint(f[11], 10, 64)
			k, _ := strconv.ParseUint(f[12], 10, 64)
			r.server += u + k
		}
	}
	return r
}

// timed runs fn between two probe readings and fills the machine-wide fields of its sample.
func (p *probe) timed(fn func() (sample, error)) (sample, error) {
	before := p.read()
	s, err := fn()
	after := p.read()
	if d := after.total - before.total; d > 0 {
		s.Busy = float64(after.busy-before.busy) / float64(d)
	}
	s.Server = time.Duration(after.server-before.server) * time.Second / clockTicks
	return s, err
}

// timeBin is GNU time, which measures a command from a small process of its own: Go starts
// children with vfork, so the kernel would count this driver's memory in a direct child's peak
// RSS (exec records the shared address space's high-water mark).
const timeBin = "/usr/bin/time"

// command runs one process to completion and measures it through the kernel's accounting of
// the process and the children it waited for (a shell pipeline's stages included). extraEnv
// is added to this process's environment. It returns the sample and the command's stdout.
func command(ctx context.Context, extraEnv []string, name string, args ...string) (sample, []byte, error) {
	var usage string
	if _, err := os.Stat(timeBin); err == nil {
		f, err := os.CreateTemp("", "bench-time-")
		if err != nil {
			return sample{}, nil, err
		}
		f.Close()
		usage = f.Name()
		defer os.Remove(usage)
		args = append([]string{"-f", "%M", "-o", usage, name}, args...)
		name = timeBin
	}
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), extraEnv...)
	// Its own process group, so that an interrupted bench stops the measured command too,
	// not only GNU time or the shell above it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	s := sample{Wall: time.Since(start)}
	if cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			s.CPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
			s.RSS = ru.Maxrss * 1024
		}
	}
	if usage != "" {
		// The last line: GNU time writes "Command exited with non-zero status" before it.
		b, _ := os.ReadFile(usage)
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if kib, perr := strconv.ParseInt(lines[len(lines)-1], 10, 64); perr == nil {
			s.RSS = kib * 1024
		}
	}
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 2000 {
			msg = msg[len(msg)-2000:]
		}
		return s, stdout.Bytes(), fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, msg)
	}
	return s, stdout.Bytes(), nil
}

// shell runs a bash script with pipefail, for the baselines' pipelines.
func shell(ctx context.Context, script string) (sample, error) {
	s, _, err := command(ctx, nil, "bash", "-o", "pipefail", "-e", "-c", script)
	return s, err
}

// summary is the median of a side's runs; RSS is the largest seen.
type summary struct {
	Runs       int       `json:"runs"`
	Seconds    float64   `json:"seconds"`     // median wall time
	All        []float64 `json:"all_seconds"` // every run, in order
	CPUCores   float64   `json:"cpu_cores"`   // median of (user+sys)/wall
	ServerCore float64   `json:"clickhouse_server_cores"`
	Busy       float64   `json:"machine_busy"` // median fraction of the machine's cores busy
	PeakRSSMiB float64   `json:"peak_rss_mib"`
	Bytes      int64     `json:"bytes,omitempty"` // median
}

func summarize(ss []sample) summary {
	if len(ss) == 0 {
		return summary{}
	}
	var walls, cores, servers, busy, byts []float64
	var rss int64
	out := summary{Runs: len(ss)}
	for _, s := range ss {
		w := s.Wall.Seconds()
		out.All = append(out.All, round(w, 3))
		walls = append(walls, w)
		if w > 0 {
			cores = append(cores, s.CPU.Seconds()/w)
			servers = append(servers, s.Server.Seconds()/w)
		}
		busy = append(busy, s.Busy)
		byts = append(byts, float64(s.Bytes))
		rss = max(rss, s.RSS)
	}
	out.Seconds = round(median(walls), 3)
	out.CPUCores = round(median(cores), 2)
	out.ServerCore = round(median(servers), 2)
	out.Busy = round(median(busy), 2)
	out.PeakRSSMiB = round(float64(rss)/(1<<20), 1)
	out.Bytes = int64(median(byts))
	return out
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if n := len(s); n%2 == 1 {
		return s[n/2]
	} else {
		return (s[n/2-1] + s[n/2]) / 2
	}
}

func round(v float64, digits int) float64 {
	p := 1.0
	for range digits {
		p *= 10
	}
	if v < 0 {
		return -float64(int64(-v*p+0.5)) / p
	}
	return float64(int64(v*p+0.5)) / p
}
