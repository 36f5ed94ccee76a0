package store

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/tracevault/tracevault/internal/devstack"
)

// lockChildEnv carries a lockChild's configuration to the re-executed test binary.
const lockChildEnv = "TRACEVAULT_TEST_LOCK_CHILD"

// lockChild is what a child process of the lock tests does.
type lockChild struct {
	Mode      string        `json:"mode"` // "contend": take the lock once, hold it, release; "hold": take it and heartbeat until lost
	Dir       string        `json:"dir,omitempty"`
	Conn      string        `json:"conn,omitempty"`
	Container string        `json:"container,omitempty"`
	TTL       time.Duration `json:"ttl"`
	Hold      time.Duration `json:"hold"`
	StartAt   time.Time     `json:"start_at"`
	Out       string        `json:"out"`
	// AppendOnly takes the create-only lock (appendonly.go); with SAS (and Endpoint), on Azure,
	// through a credential that can do nothing else.
	AppendOnly bool   `json:"append_only,omitempty"`
	SAS        string `json:"sas,omitempty"`
	Endpoint   string `json:"endpoint,omitempty"`
}

func (c lockChild) backend(ctx context.Context) (Backend, error) {
	var b Backend
	var err error
	switch {
	case c.Dir != "":
		b, err = NewFS(c.Dir)
	case c.SAS != "":
		b, err = NewAzure(ctx, AzureOptions{Endpoint: c.Endpoint, SASToken: c.SAS, Container: c.Container, Prefix: "repo"})
	default:
		b, err = NewAzure(ctx, AzureOptions{ConnectionString: c.Conn, Container: c.Container, Prefix: "repo"})
	}
	if err != nil || !c.AppendOnly {
		return b, err
	}
	return AppendOnly(b), nil
}

// TestLockChildProcess is not a test: it is the body of the child processes the lock tests start
// (the test binary re-executed with -test.run), and does nothing unless lockChildEnv is set.
func TestLockChildProcess(t *testing.T) {
	raw := os.Getenv(lockChildEnv)
	if raw == "" {
		return
	}
	var c lockChild
	if err := json.Unmarshal([]byte(raw), &c); err != nil {
		t.Fatal(err)
	}
	out, err := os.OpenFile(c.Out, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	// One write per line with O_APPEND: lines of concurrent children never interleave.
	record := func(format string, args ...any) {
		if _, err := fmt.Fprintf(out, "%d "+format+"\n", append([]any{os.Getpid()}, args...)...); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	b, err := c.backend(ctx)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(c.StartAt))
	deadline := time.Now().Add(90 * time.Second)
	for {
		l, err := b.Lock(ctx, "repository", c.TTL)
		if errors.Is(err, ErrLocked) && c.Mode == "contend" && time.Now().Before(deadline) {
			time.Sleep(time.Duration(5+rand.IntN(20)) * time.Millisecond)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		acquired := time.Now()
		record("acquired %d", acquired.UnixNano())
		if c.Mode == "hold" {
			// A write happens only after checking the lock; its time is taken before the check.
			for {
				time.Sleep(20 * time.Millisecond)
				now := time.Now()
				if !Held(l) {
					record("lost %d", time.Now().UnixNano())
					_ = l.Release(ctx)
					return
				}
				record("write %d", now.UnixNano())
			}
		}
		held, lost := acquired, false
		for time.Since(acquired) < c.Hold {
			time.Sleep(20 * time.Millisecond)
			now := time.Now()
			if !Held(l) {
				lost = true
				break
			}
			held = now
		}
		record("held %d %d %t", acquired.UnixNano(), held.UnixNano(), lost)
		if err := l.Release(ctx); err != nil {
			t.Fatal(err)
		}
		return
	}
}

func startLockChild(t *testing.T, c lockChild) *exec.Cmd {
	t.Helper()
	raw, _ := json.Marshal(c)
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockChildProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), lockChildEnv+"="+string(raw))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr // a child's t.Fatal is on its stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGCONT)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd
}

// lockLines reads a child output file: one []string per line.
func lockLines(t *testing.T, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines [][]string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, strings.Fields(sc.Text()))
	}
	return lines
}

func nanos(t *testing.T, s string) time.Time {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return time.Unix(0, n)
}

// lockSubject is one backend the process tests run against, with what its children need.
type lockSubject struct {
	name  string
	ttl   time.Duration // Azure leases last at least 15 s
	hold  time.Duration // how long each contender holds: across renewals on the filesystem
	child lockChild
	b     Backend
}

func lockSubjects(t *testing.T) []lockSubject {
	dir := t.TempDir()
	fsb, err := NewFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	subjects := []lockSubject{{name: "fs", ttl: time.Second, hold: 600 * time.Millisecond, child: lockChild{Dir: dir}, b: fsb}}
	aoDir := t.TempDir()
	aofs, err := NewFS(aoDir)
	if err != nil {
		t.Fatal(err)
	}
	subjects = append(subjects, lockSubject{name: "fs-append-only", ttl: time.Second, hold: 600 * time.Millisecond,
		child: lockChild{Dir: aoDir, AppendOnly: true}, b: AppendOnly(aofs)})
	env := devstack.Require(t)
	az := openAzurite(t, AzureOptions{}).(*Azure)
	subjects = append(subjects, lockSubject{name: "azurite", ttl: 15 * time.Second, hold: 300 * time.Millisecond,
		child: lockChild{Conn: env.AzureConnectionString, Container: az.opts.Container}, b: az})
	// The append-only daemon's credential: a container SAS "rcl" (no write, delete or lease).
	rcl := openAzurite(t, AzureOptions{}).(*Azure)
	endpoint, token, err := env.AzureContainerSAS(rcl.opts.Container, "rcl")
	if err != nil {
		t.Fatal(err)
	}
	sasb, err := NewAzure(context.Background(), AzureOptions{Endpoint: endpoint, SASToken: token, Container: rcl.opts.Container, Prefix: "repo"})
	if err != nil {
		t.Fatal(err)
	}
	return append(subjects, lockSubject{name: "azurite-rcl", ttl: 6 * time.Second, hold: 300 * time.Millisecond,
		child: lockChild{Endpoint: endpoint, SAS: token, Container: rcl.opts.Container, AppendOnly: true}, b: AppendOnly(sasb)})
}

// TestLockExclusiveAcrossProcesses: 8 processes contend for one lock, on the filesystem starting
// from a stale lock whose holder stopped renewing (where two of six contenders used to win);
// each holds it for a while across renewals, and no two holding intervals overlap.
func TestLockExclusiveAcrossProcesses(t *testing.T) {
	const children = 8
	for _, s := range lockSubjects(t) {
		t.Run(s.name, func(t *testing.T) {
			ctx := context.Background()
			if strings.HasPrefix(s.name, "fs") {
				l, err := s.b.Lock(ctx, "repository", s.ttl)
				if err != nil {
					t.Fatal(err)
				}
				r := l.(*renewal) // a holder that hangs: it neither renews nor releases
				r.stopOnce.Do(func() { close(r.stop) })
				<-r.done
				time.Sleep(s.ttl + 100*time.Millisecond)
			}
			c := s.child
			c.Mode, c.TTL, c.Hold, c.Out = "contend", s.ttl, s.hold, filepath.Join(t.TempDir(), "out")
			c.StartAt = time.Now().Add(2 * time.Second) // all start together, after the binaries loaded
			var cmds []*exec.Cmd
			for range children {
				cmds = append(cmds, startLockChild(t, c))
			}
			for _, cmd := range cmds {
				if err := cmd.Wait(); err != nil {
					t.Fatalf("child: %v", err)
				}
			}
			type interval struct {
				from, to time.Time
				lost     bool
			}
			var got []interval
			for _, f := range lockLines(t, c.Out) {
				if len(f) == 5 && f[1] == "held" {
					got = append(got, interval{nanos(t, f[2]), nanos(t, f[3]), f[4] == "true"})
				}
			}
			if len(got) != children {
				t.Fatalf("%d of %d children held the lock", len(got), children)
			}
			slices.SortFunc(got, func(a, b interval) int { return a.from.Compare(b.from) })
			for i := 1; i < len(got); i++ {
				if !got[i].from.After(got[i-1].to) {
					t.Errorf("two holders at once: %v..%v and %v..%v", got[i-1].from, got[i-1].to, got[i].from, got[i].to)
				}
			}
			for _, g := range got {
				if g.lost {
					t.Logf("a child lost its lease while holding (a stall on a loaded machine); it stopped at %v", g.to)
				}
			}
		})
	}
}

// TestStoppedHolderNoticesLoss: a holder stopped (SIGSTOP) past its lease is replaced; resumed,
// it notices the loss before writing anything more, and leaves the new holder's lock alone.
func TestStoppedHolderNoticesLoss(t *testing.T) {
	for _, s := range lockSubjects(t) {
		t.Run(s.name, func(t *testing.T) {
			ctx := context.Background()
			c := s.child
			c.Mode, c.TTL, c.Out, c.StartAt = "hold", s.ttl, filepath.Join(t.TempDir(), "out"), time.Now()
			cmd := startLockChild(t, c)
			waitFor(t, 30*time.Second, func() bool { return len(lockLines(t, c.Out)) >= 3 })
			if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
			stopped := time.Now()
			var l Lock
			waitFor(t, 2*s.ttl+10*time.Second, func() bool {
				var err error
				l, err = s.b.Lock(ctx, "repository", s.ttl)
				if err != nil && !errors.Is(err, ErrLocked) {
					t.Fatal(err)
				}
				return err == nil
			})
			defer l.Release(ctx)
			if took := time.Since(stopped); took < s.ttl-leaseMargin(s.ttl) {
				t.Errorf("a live holder's lock was taken over %v after it stopped; its ttl is %v", took, s.ttl)
			}
			resumed := time.Now()
			if err := cmd.Process.Signal(syscall.SIGCONT); err != nil {
				t.Fatal(err)
			}
			if err := cmd.Wait(); err != nil {
				t.Fatalf("resumed holder: %v", err)
			}
			var noticed bool
			for _, f := range lockLines(t, c.Out) {
				switch f[1] {
				case "write":
					if at := nanos(t, f[2]); !at.Before(resumed) {
						t.Errorf("the resumed holder wrote at %v, after it was resumed at %v", at, resumed)
					}
				case "lost":
					noticed = true
				}
			}
			if !noticed {
				t.Error("the resumed holder exited without noticing the loss")
			}
			// The old holder's exit (it released) left the new holder's lock alone: it still
			// excludes others, and keeps its lock through renewals.
			if _, err := s.b.Lock(ctx, "repository", s.ttl); !errors.Is(err, ErrLocked) {
				t.Fatalf("third contender after the old holder released: %v, want ErrLocked", err)
			}
			time.Sleep(s.ttl / 2)
			if err := Confirm(ctx, l); err != nil {
				t.Fatalf("new holder after the old one resumed: %v", err)
			}
		})
	}
}

func waitFor(t *testing.T, limit time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRenewalRetriesUntilExpiry: a renewal that fails transiently is retried; only a lease that
// has really run out, or was provably taken, is lost.
func TestRenewalRetriesUntilExpiry(t *testing.T) {
	const ttl = 600 * time.Millisecond
	noRelease := func(context.Context) error { return nil }
	tests := []struct {
		name     string
		renew    func(call int64) error
		lostFrom time.Duration // 0: never lost during the test
		lostBy   time.Duration
		calls    int64 // renewals tried when it is lost; 0 = any
	}{
		{"one transient failure", func(call int64) error {
			if call == 1 {
				return errors.New("connection reset")
			}
			return nil
		}, 0, 0, 0},
		{"failures until expiry", func(int64) error { return errors.New("503 server busy") }, ttl - leaseMargin(ttl), ttl, 0},
		// A proven takeover is not retried: lost at the first renewal, long before expiry would.
		{"taken over", func(int64) error { return errLeaseTaken }, ttl / 3, ttl, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int64
			start := time.Now()
			l := startLease(ttl, start, func(context.Context) error { return tc.renew(calls.Add(1)) }, noRelease)
			defer l.Release(context.Background())
			if tc.lostBy != 0 {
				// The safety property, read from the clock rather than from when a goroutine
				// got to run: past lostBy the lease is not held, whatever the scheduler did.
				time.Sleep(time.Until(start.Add(tc.lostBy)))
				if Held(l) {
					t.Fatalf("still held %v after start (%d renewals), want lost by %v", time.Since(start), calls.Load(), tc.lostBy)
				}
			}
			// The channel closes when the renewal goroutine runs; on a loaded machine that may
			// be late, which is why the upper bound here has slack and Held above has none.
			const schedulingSlack = time.Second
			select {
			case <-l.lost:
				at := time.Since(start)
				if tc.lostFrom == 0 || at < tc.lostFrom || at > tc.lostBy+schedulingSlack {
					t.Fatalf("lost after %v (%d renewals), want between %v and %v", at, calls.Load(), tc.lostFrom, tc.lostBy)
				}
				if tc.calls != 0 && calls.Load() != tc.calls {
					t.Fatalf("lost after %d renewals, want %d", calls.Load(), tc.calls)
				}
			case <-time.After(4 * ttl):
				if tc.lostFrom != 0 {
					t.Fatal("never lost")
				}
				if !Held(l) || calls.Load() < 4 {
					t.Fatalf("held %v after %d renewals", Held(l), calls.Load())
				}
			}
		})
	}
}

// failOnceTransport fails the first lease renewal with a reset, or with always every one with a
// 503, as a storage outage would.
type failOnceTransport struct {
	failed, renewals atomic.Int64
	always           bool
}

func (f *failOnceTransport) Do(req *http.Request) (*http.Response, error) {
	if slices.Contains(req.Header["x-ms-lease-action"], "renew") { // the SDK sets it uncanonicalised
		if f.renewals.Add(1) == 1 || f.always {
			f.failed.Add(1)
			if f.always {
				return &http.Response{StatusCode: http.StatusServiceUnavailable, Status: "503 Server Busy (injected)", Request: req,
					Header: http.Header{"x-ms-error-code": {"ServerBusy"}}, Body: io.NopCloser(strings.NewReader(""))}, nil
			}
			return nil, errors.New("read: connection reset by peer (injected)")
		}
	}
	return http.DefaultClient.Do(req)
}

// TestAzureLostLeaseNamesTheRepository: renewals that fail until the lease runs out, retried by
// the SDK's own policy until the validity's deadline (which leaves only "context deadline
// exceeded"), lose the lock with an error naming the repository's lock (found by the chaos
// suite: "the lease ran out while renewing it failed: context deadline exceeded" said nowhere).
func TestAzureLostLeaseNamesTheRepository(t *testing.T) {
	ctx := context.Background()
	b := openAzurite(t, AzureOptions{Transport: &failOnceTransport{always: true}})
	const ttl = 15 * time.Second
	l, err := b.Lock(ctx, "repository", ttl)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release(ctx)
	select {
	case <-l.Lost():
	case <-time.After(2 * ttl):
		t.Fatal("the lease outlived renewals that all failed")
	}
	err = Confirm(ctx, l)
	if want := "renew lock repository in " + b.String(); !errors.Is(err, ErrLockLost) || !strings.Contains(err.Error(), want) {
		t.Fatalf("lost lease: %v; want ErrLockLost naming %q", err, want)
	}
}

// TestAzureRenewalSurvivesATransientFailure: with the SDK's own retries off, one failed renewal
// reaches the lease; it retries, and the lease outlives its first validity.
func TestAzureRenewalSurvivesATransientFailure(t *testing.T) {
	ctx := context.Background()
	ft := &failOnceTransport{}
	b := openAzurite(t, AzureOptions{Transport: ft, Retry: policy.RetryOptions{MaxRetries: -1}})
	const ttl = 15 * time.Second
	l, err := b.Lock(ctx, "repository", ttl)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release(ctx)
	time.Sleep(ttl - leaseMargin(ttl) + time.Second) // past the validity of the acquisition alone
	if !Held(l) || ft.failed.Load() != 1 || ft.renewals.Load() < 2 {
		t.Fatalf("held %v after %d renewals, %d failed", Held(l), ft.renewals.Load(), ft.failed.Load())
	}
	if _, err := b.Lock(ctx, "repository", ttl); !errors.Is(err, ErrLocked) {
		t.Fatalf("second holder: %v, want ErrLocked", err)
	}
}

// TestLostLeaseNamesItsCause: a lease lost because its renewals failed says so with the failure
// (found by the chaos suite: a backup during a storage outage reported only "lock lost: it
// expired or another process took it over", which sent the operator looking for another
// process); one provably taken over says that.
func TestLostLeaseNamesItsCause(t *testing.T) {
	const ttl = 400 * time.Millisecond
	for _, tc := range []struct {
		name  string
		renew error
		want  string
	}{
		{"renewals failing", errors.New("503 server busy (injected)"), "503 server busy (injected)"},
		{"taken over", errLeaseTaken, errLeaseTaken.Error()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := startLease(ttl, time.Now(), func(context.Context) error { return tc.renew }, func(context.Context) error { return nil })
			defer l.Release(context.Background())
			ctx, cancel := WhileHeld(context.Background(), l, ErrLockLost)
			defer cancel(nil)
			select {
			case <-ctx.Done():
			case <-time.After(10 * ttl):
				t.Fatal("the lease was never lost")
			}
			err := Confirm(context.Background(), l)
			if !errors.Is(err, ErrLockLost) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Confirm after the loss: %v; want ErrLockLost naming %q", err, tc.want)
			}
			if cause := context.Cause(ctx); !errors.Is(cause, ErrLockLost) || !strings.Contains(cause.Error(), tc.want) {
				t.Errorf("WhileHeld's cause: %v; want ErrLockLost naming %q", cause, tc.want)
			}
		})
	}
}
