package store

import (
	"bytes"
	"context"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/tracevault/tracevault/internal/devstack"
)

// faultProxy forwards to Azurite, but fails a share of requests the ways Azure and networks do:
// 503 ServerBusy, 429 throttling, a reset connection, or a slow answer.
type faultProxy struct {
	mu       sync.Mutex
	rng      *rand.Rand
	failRate float64
	kinds    int // fault kinds in play: 1 = only 503, 4 = all (the fourth, slow, still answers)
	injected atomic.Int64
	proxy    *httputil.ReverseProxy
}

func (f *faultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	roll, kind := f.rng.Float64(), f.rng.IntN(f.kinds)
	f.mu.Unlock()
	if roll >= f.failRate {
		f.proxy.ServeHTTP(w, r)
		return
	}
	f.injected.Add(1)
	switch kind {
	case 0:
		w.Header().Set("x-ms-error-code", "ServerBusy")
		w.WriteHeader(http.StatusServiceUnavailable)
	case 1:
		w.Header().Set("x-ms-error-code", "TooManyRequests")
		w.Header().Set("Retry-After", "0")
		w.WriteHeader(http.StatusTooManyRequests)
	case 2:
		if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
			if tcp, ok := conn.(*net.TCPConn); ok {
				_ = tcp.SetLinger(0) // RST, not FIN
			}
			conn.Close()
		}
	default:
		time.Sleep(300 * time.Millisecond)
		f.proxy.ServeHTTP(w, r)
	}
}

// startFaultProxy returns an Azurite connection string that goes through the proxy.
func startFaultProxy(t *testing.T, failRate float64, kinds int) (string, *faultProxy) {
	env := devstack.Require(t)
	endpoint := regexp.MustCompile(`BlobEndpoint=([^;]+)`).FindStringSubmatch(env.AzureConnectionString)[1]
	target, _ := url.Parse(endpoint)
	fp := &faultProxy{rng: rand.New(rand.NewPCG(42, 7)), failRate: failRate, kinds: kinds,
		proxy: httputil.NewSingleHostReverseProxy(&url.URL{Scheme: target.Scheme, Host: target.Host})}
	srv := httptest.NewServer(fp)
	t.Cleanup(srv.Close)
	proxied := strings.Replace(env.AzureConnectionString, "http://"+target.Host, srv.URL, 1)
	return proxied, fp
}

var quickRetry = policy.RetryOptions{MaxRetries: 10, RetryDelay: 10 * time.Millisecond, MaxRetryDelay: 200 * time.Millisecond, TryTimeout: 10 * time.Second}

func TestFaultsAreRetriedAndNothingBadIsCommitted(t *testing.T) {
	ctx := context.Background()
	direct := openAzurite(t, AzureOptions{}).(*Azure)
	proxied, fp := startFaultProxy(t, 0.3, 4)
	flaky, err := NewAzure(ctx, AzureOptions{ConnectionString: proxied, Container: direct.opts.Container, Prefix: "repo",
		BlockSize: 1 << 20, Concurrency: 4, Retry: quickRetry})
	if err != nil {
		t.Fatal(err)
	}
	r := openRepo(t, flaky, Options{})
	m := NewManifest(nil)
	var want [][]byte
	for i := 0; i < 10; i++ {
		data := testData(3<<20+i, uint64(10+i))
		ref, _, err := r.PutObject(ctx, "", bytes.NewReader(data))
		if err != nil {
			t.Fatalf("put %d through faults: %v", i, err)
		}
		m.Objects = append(m.Objects, ManifestObject{ObjectRef: ref, Source: "test"})
		want = append(want, data)
	}
	m.Status = StatusComplete
	if err := r.CommitManifest(ctx, m); err != nil {
		t.Fatal(err)
	}
	for i, o := range m.Objects {
		if got := reader(t)(r.OpenObject(ctx, o.ObjectRef)); !bytes.Equal(got, want[i]) {
			t.Fatalf("object %d read through faults differs", i)
		}
	}
	if fp.injected.Load() < 10 {
		t.Errorf("only %d faults injected; the test proves little", fp.injected.Load())
	}
	// Read back without the proxy: the manifest references only whole, correct objects.
	rep, err := openRepo(t, direct, Options{}).Verify(ctx, nil, true)
	if err != nil || rep.Objects != 10 || len(rep.Problems) != 0 {
		t.Fatalf("verify after faulty upload: %+v %v", rep, err)
	}
	t.Logf("%d faults injected", fp.injected.Load())
}

// azureBehindFaults opens direct's container through a fault proxy that answers a failRate
// share of requests with 503, retried maxRetries times.
func azureBehindFaults(t *testing.T, direct *Azure, failRate float64, maxRetries int32) (*Azure, *faultProxy, error) {
	proxied, fp := startFaultProxy(t, failRate, 1)
	retry := quickRetry
	retry.MaxRetries = maxRetries
	a, err := NewAzure(context.Background(), AzureOptions{ConnectionString: proxied, Container: direct.opts.Container, Retry: retry})
	return a, fp, err
}

func TestPersistentFaultFailsClearly(t *testing.T) {
	direct := openAzurite(t, AzureOptions{}).(*Azure)
	_, _, err := azureBehindFaults(t, direct, 1.0, 2)
	if err == nil || !strings.Contains(err.Error(), direct.opts.Container) {
		t.Fatalf("every request failing: %v; want an error naming the container", err)
	}
}

// TestReleaseOutlastsAFault: a release that meets a few seconds of 503s is retried, so the next
// holder gets the lock at once instead of waiting out the lease.
func TestReleaseOutlastsAFault(t *testing.T) {
	ctx := context.Background()
	direct := openAzurite(t, AzureOptions{}).(*Azure)
	flaky, fp, err := azureBehindFaults(t, direct, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	l, err := flaky.Lock(ctx, "repository", 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	setRate := func(r float64) { fp.mu.Lock(); fp.failRate = r; fp.mu.Unlock() }
	setRate(1)
	time.AfterFunc(2*time.Second, func() { setRate(0) })
	if err := l.Release(ctx); err != nil {
		t.Fatalf("release through 2 s of 503s: %v", err)
	}
	if fp.injected.Load() < 2 {
		t.Fatalf("%d faults met the release; the test proves nothing", fp.injected.Load())
	}
	next, err := direct.Lock(ctx, "repository", 60*time.Second)
	if err != nil {
		t.Fatalf("lock after the release: %v; want it free at once", err)
	}
	if err := next.Release(ctx); err != nil {
		t.Fatal(err)
	}
}
