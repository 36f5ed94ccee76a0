package store

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"
)

func TestRetentionKeepsNewestPITRBase(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	snaps := []Manifest{
		{ID: "a", Start: now.Add(-time.Hour), Status: StatusComplete},
		{ID: "base-new", Start: now.Add(-45 * time.Hour), Status: StatusComplete, Tags: []string{TagPITRBase}},
		{ID: "base-old", Start: now.Add(-60 * time.Hour), Status: StatusComplete, Tags: []string{TagPITRBase}},
	}
	keep := Retention{KeepLast: 1}.Keep(snaps, now)
	if _, ok := keep["base-new"]; !ok {
		t.Errorf("the newest point-in-time base was forgotten: %v", keep)
	}
	if _, ok := keep["base-old"]; ok {
		t.Errorf("an older base is kept by no rule but was: %v", keep)
	}
}

// TestNamedRoundTrip: a named stream reads back as written, and damage fails the read at its end.
func TestNamedRoundTrip(t *testing.T) {
	ctx := context.Background()
	r, err := Open(ctx, Options{URL: "file://" + t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("segment "), 10000)
	ref, err := r.PutNamed(ctx, "pitr/c/seg/0000000000000001.seg", bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	read := func(ref ObjectRef) ([]byte, error) {
		rc, err := r.OpenNamed(ctx, "pitr/c/seg/0000000000000001.seg", ref)
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		return io.ReadAll(rc)
	}
	if got, err := read(ref); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes, %v", len(got), err)
	}
	bad := ref
	bad.SHA256 = "00" + bad.SHA256[2:]
	if _, err := read(bad); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("a checksum mismatch must fail the read: %v", err)
	}
	for _, name := range []string{"data/ab/x", "snapshots/x.json", "pitr/../data/x", ""} {
		if _, err := r.PutNamed(ctx, name, bytes.NewReader(nil)); err == nil {
			t.Errorf("PutNamed(%q) was accepted", name)
		}
	}
}
