package store

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// TestLockSeesObjectsOthersStored runs two writers on one repository, as two daemons of an HA
// pair or a daemon and a one-shot backup do: each run's lock must find the objects the other
// stored since this process last read the manifests, and reuse them instead of uploading again.
func TestLockSeesObjectsOthersStored(t *testing.T) {
	for _, bc := range backendCases {
		t.Run(bc.name, func(t *testing.T) {
			ctx := context.Background()
			b := bc.open(t, AzureOptions{})
			daemon, other := openRepo(t, b, Options{}), openRepo(t, b, Options{})
			run := func(r *Repository, fingerprint string, data []byte) (ObjectRef, bool) {
				t.Helper()
				l, err := r.Lock(ctx, "backup", time.Minute)
				if err != nil {
					t.Fatal(err)
				}
				defer l.Release(ctx)
				ref, reused, err := r.PutObject(ctx, fingerprint, bytes.NewReader(data))
				if err != nil {
					t.Fatal(err)
				}
				m := NewManifest(nil)
				m.Objects = []ManifestObject{{ObjectRef: ref, Reused: reused, Source: "clickhouse", Database: "default", Table: "traces", Partition: fingerprint}}
				m.Status = StatusComplete
				if err := r.CommitManifest(ctx, m); err != nil {
					t.Fatal(err)
				}
				return ref, reused
			}
			// The daemon's first run reads the manifests (none yet) into its index.
			run(daemon, "fp-daemon", testData(64<<10, 1))
			// Another process stores an object; the daemon's next run must reuse it.
			stored, _ := run(other, "fp-other", testData(64<<10, 2))
			ref, reused := run(daemon, "fp-other", []byte("never read"))
			if !reused || ref != stored {
				t.Fatalf("the daemon's run uploaded %+v (reused %v); want the object the other process stored, %+v", ref, reused, stored)
			}
			got := reader(t)(daemon.OpenObject(ctx, ref))
			if !bytes.Equal(got, testData(64<<10, 2)) || strings.Contains(string(got), "never read") {
				t.Fatal("the reused object's content is not the other process's")
			}
		})
	}
}
