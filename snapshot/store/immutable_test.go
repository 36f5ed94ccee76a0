package store

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// Azurite implements neither version-level immutability nor legal holds (Set Legal Hold answers
// 501 APINotImplemented, measured below). immutableTransport stands in for the service in front of
// Azurite: the responses it makes up follow the shapes the Blob REST reference documents (Delete
// Blob on an immutable blob: 409 with x-ms-error-code BlobImmutableDueToPolicy; Get Blob
// Properties: x-ms-immutability-policy-until-date, x-ms-legal-hold; Set Legal Hold: 200 with
// x-ms-legal-hold). They are documented shapes, not responses recorded from Azure.
type immutableTransport struct {
	mu        sync.Mutex
	immutable map[string]bool // blob paths whose delete is refused
	until     time.Time
	holds     []string // "path=true|false" of every Set Legal Hold request
}

func (f *immutableTransport) Do(req *http.Request) (*http.Response, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	path := req.URL.Path
	for k := range f.immutable { // Azurite's paths start with the account: match the suffix
		if strings.HasSuffix(path, k) {
			path = k
		}
	}
	made := func(status int, hdr map[string]string) *http.Response {
		h := http.Header{}
		for k, v := range hdr {
			h.Set(k, v)
		}
		return &http.Response{StatusCode: status, Status: http.StatusText(status), Header: h, Request: req, Body: io.NopCloser(strings.NewReader(""))}
	}
	if req.URL.Query().Get("comp") == "legalhold" && req.Method == http.MethodPut {
		v := strings.Join(req.Header["x-ms-legal-hold"], "") + strings.Join(req.Header["X-Ms-Legal-Hold"], "")
		f.holds = append(f.holds, req.URL.Path+"="+v)
		return made(http.StatusOK, map[string]string{"x-ms-legal-hold": v, "x-ms-request-id": "documented-shape"}), nil
	}
	if req.Method == http.MethodDelete && f.immutable[path] {
		return made(http.StatusConflict, map[string]string{"x-ms-error-code": "BlobImmutableDueToPolicy",
			"x-ms-request-id": "documented-shape"}), nil
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err == nil && req.Method == http.MethodHead && f.immutable[path] {
		resp.Header.Set("x-ms-immutability-policy-until-date", f.until.Format(http.TimeFormat))
		resp.Header.Set("x-ms-immutability-policy-mode", "locked")
		resp.Header.Set("x-ms-legal-hold", "true")
	}
	return resp, err
}

// immutableRepo is a repository on Azurite through immutableTransport, with two snapshots, the
// older first.
func immutableRepo(t *testing.T) (*Repository, *Azure, *immutableTransport, []*Manifest) {
	t.Helper()
	ft := &immutableTransport{immutable: map[string]bool{}, until: time.Date(2027, 6, 1, 0, 0, 0, 0, time.UTC)}
	a := openAzurite(t, AzureOptions{Transport: ft}).(*Azure)
	r := openRepo(t, a, Options{})
	ctx := context.Background()
	var ms []*Manifest
	for i := range 2 {
		ref, _, err := r.PutObject(ctx, "", bytes.NewReader(testData(1000+i, uint64(i))))
		if err != nil {
			t.Fatal(err)
		}
		m := NewManifest(nil)
		m.Start = time.Now().Add(time.Duration(i-10) * time.Hour).UTC()
		m.Objects = []ManifestObject{{ObjectRef: ref, Source: "test"}}
		m.Status = StatusComplete
		if err := r.CommitManifest(ctx, m); err != nil {
			t.Fatal(err)
		}
		ms = append(ms, m)
	}
	return r, a, ft, ms
}

// TestPruneKeepsGoingPastImmutableObjects: a forgotten snapshot whose manifest the storage keeps
// (immutable) is reported as retained, with until when, and its objects stay; prune goes on.
func TestPruneKeepsGoingPastImmutableObjects(t *testing.T) {
	ctx := context.Background()
	r, a, ft, ms := immutableRepo(t)
	old := ms[0]
	ft.mu.Lock()
	ft.immutable["/"+a.opts.Container+"/"+a.blob(manifestName(old.ID))] = true
	ft.mu.Unlock()
	rep, err := r.Prune(ctx, Retention{KeepLast: 1}, false, time.Second)
	if err != nil {
		t.Fatalf("prune past an immutable manifest: %v", err)
	}
	if len(rep.Retained) != 1 || !strings.Contains(rep.Retained[0], old.ID) || !strings.Contains(rep.Retained[0], "2027-06-01") {
		t.Fatalf("retained %q; want the old snapshot, retained until 2027-06-01", rep.Retained)
	}
	if rep.ObjectsRemoved != 0 {
		t.Errorf("%d objects removed: the retained snapshot's objects must stay", rep.ObjectsRemoved)
	}
	if _, err := a.Stat(ctx, old.Objects[0].Name()); err != nil {
		t.Errorf("the retained snapshot's object: %v", err)
	}
}

// TestHoldRequestShapes: hold and release send Set Legal Hold for the manifest and every object
// of the snapshot; Azurite itself refuses it as not implemented, which hold names.
func TestHoldRequestShapes(t *testing.T) {
	ctx := context.Background()
	r, a, ft, ms := immutableRepo(t)
	for _, hold := range []bool{true, false} {
		ft.mu.Lock()
		ft.holds = nil
		ft.mu.Unlock()
		rep, err := r.Hold(ctx, ms[1].ID, hold)
		if err != nil || rep.Objects != 2 {
			t.Fatalf("hold %t: %+v, %v", hold, rep, err)
		}
		want := []string{
			"/" + a.opts.Container + "/" + a.blob(manifestName(ms[1].ID)),
			"/" + a.opts.Container + "/" + a.blob(ms[1].Objects[0].Name()),
		}
		ft.mu.Lock()
		got := strings.Join(ft.holds, " ")
		ft.mu.Unlock()
		for _, w := range want {
			if !strings.Contains(got, w+"="+map[bool]string{true: "true", false: "false"}[hold]) {
				t.Errorf("hold %t: requests %q lack %s", hold, got, w)
			}
		}
	}

	live := openRepo(t, openAzurite(t, AzureOptions{}), Options{})
	ref, _, err := live.PutObject(ctx, "", bytes.NewReader([]byte("x")))
	if err != nil {
		t.Fatal(err)
	}
	m := NewManifest(nil)
	m.Objects, m.Status = []ManifestObject{{ObjectRef: ref, Source: "test"}}, StatusComplete
	if err := live.CommitManifest(ctx, m); err != nil {
		t.Fatal(err)
	}
	if _, err := live.Hold(ctx, m.ID, true); !errors.Is(err, ErrNoLegalHold) {
		t.Errorf("hold on Azurite: %v; want ErrNoLegalHold (Azurite answers 501)", err)
	}
	fsb, err := NewFS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := openRepo(t, fsb, Options{}).Hold(ctx, m.ID, true); !errors.Is(err, ErrNoLegalHold) {
		t.Errorf("hold on a directory: %v; want ErrNoLegalHold", err)
	}
}
