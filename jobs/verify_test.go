package jobs

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tracevault/tracevault/config"
	"github.com/tracevault/tracevault/snapshot/store"
)

// TestVerifyJobSample: the scheduled verify job checks existence and size without [verify]
// sample, so a flipped byte (same size) passes; with a sample it reads data, finds the byte
// and advances the repository's rotation.
func TestVerifyJobSample(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cfg := config.Defaults()
	cfg.Storage.URL = "file://" + dir
	repo, err := CreateRepository(ctx, cfg.Storage, quiet)
	if err != nil {
		t.Fatal(err)
	}
	ref, _, err := repo.PutObject(ctx, "", strings.NewReader("partition 202611 of traces"))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC)
	m := &store.Manifest{ID: start.Format("20060102T150405Z") + "-000001", Start: start, Status: store.StatusComplete,
		Objects: []store.ManifestObject{{ObjectRef: ref, Source: config.SourceClickHouse, Database: "langfuse", Table: "traces", Partition: "202611"}}}
	if err := repo.CommitManifest(ctx, m); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, filepath.FromSlash(ref.Name()))
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)/2] ^= 1
	if err := os.WriteFile(p, raw, 0o640); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		sample  string
		wantErr bool
	}{
		{"", false},
		{"100%", true},
	} {
		cfg.Verify.Sample = tc.sample
		d := &Daemon{cfg: &cfg, repo: repo}
		err := d.safeRun(ctx, Job{Job: config.Job{Name: "verify", Action: config.ActionVerify}}, &Run{})
		if (err != nil) != tc.wantErr || (err != nil && !strings.Contains(err.Error(), ref.Name())) {
			t.Errorf("sample %q: %v; want an error naming %s: %v", tc.sample, err, ref.Name(), tc.wantErr)
		}
	}
	// The position is a new object per run (append-only safe): the newest is the place.
	var newest string
	if err := repo.Backend().List(ctx, "verify/positions/", func(o store.ObjectInfo) error {
		newest = max(newest, o.Name)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var pos struct{ Next map[string]int }
	if err := repo.GetJSON(ctx, newest, &pos); err != nil || pos.Next["1"] != 1 {
		t.Errorf("the rotating 100%% run left position %+v (%v)", pos, err)
	}
	if _, err := verifyRequest(config.Verify{Sample: "half"}); err == nil || !strings.Contains(err.Error(), "[verify] sample") {
		t.Errorf("a bad sample: %v", err)
	}
}
