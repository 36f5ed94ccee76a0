package store

import (
	"encoding/json"
	"path"
	"strings"
	"testing"
	"time"
)

// FuzzID: whatever an id read from storage holds, a name built from a valid one stays inside
// its directory, and an invalid one never becomes a name (nor panics).
func FuzzID(f *testing.F) {
	for _, s := range []string{"", "a", "..", "../victim/secret", "20261124T031500Z-1a2b3c", "20261124T031500Z-1a2b3c/../..",
		"0123456789abcdef0123456789abcdef", "0123456789ABCDEF0123456789ABCDEF", "0123456789abcdef0123456789abcde\n", "deadbeef", "dead/eef"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		inside := func(name, dir string) bool {
			return path.Clean(name) == name && strings.HasPrefix(name, dir) && !strings.Contains(name, "..") && !strings.ContainsAny(name, "\\\x00\n")
		}
		if ValidSnapshotID(id) == nil && !inside(manifestName(id), "snapshots/") {
			t.Errorf("valid snapshot id %q makes manifest name %q", id, manifestName(id))
		}
		name := ObjectRef{ID: id}.Name()
		switch err := ValidObjectID(id); {
		case err == nil && (!inside(name, "data/") || len(id) != 32):
			t.Errorf("valid object id %q makes name %q", id, name)
		case err != nil && name != "":
			t.Errorf("invalid object id %q made name %q", id, name)
		}
		if ValidRunID(id) == nil && (len(id) != 8 || strings.ContainsAny(id, "/.")) {
			t.Errorf("run id %q accepted", id)
		}
	})
}

// FuzzManifest: any bytes decode to a valid manifest or an error, never a panic, and a manifest
// that is accepted names only objects inside data/ and is the file it was read from.
func FuzzManifest(f *testing.F) {
	const name = "snapshots/20261124T031500Z-1a2b3c.json"
	good := Manifest{ID: "20261124T031500Z-1a2b3c", Start: time.Date(2026, 11, 24, 3, 15, 0, 0, time.UTC), Status: StatusComplete,
		Objects:  []ManifestObject{{ObjectRef: ObjectRef{ID: strings.Repeat("0a", 16), SHA256: sha0, Size: 10, RawSize: 20}, Source: "clickhouse"}},
		Sections: map[string]json.RawMessage{"postgres": json.RawMessage(`{"database":{"name":"langfuse"}}`)}}
	b, _ := json.Marshal(good)
	f.Add(b)
	f.Add([]byte(`{"id":"../../x","status":"complete"}`))
	f.Add([]byte(`{"id":"20261124T031500Z-1a2b3c","status":"complete","objects":[{"id":"a"}]}`))
	f.Add([]byte(`{"id":"20261124T031500Z-1a2b3c","status":"complete","objects":[{"id":"../victim/secret","sha256":"` + sha0 + `"}]}`))
	f.Add([]byte(`{"id":"20261124T031500Z-1a2b3c","status":"complete","objects":[{"id":"0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a","sha256":"` + sha0 + `","size":-1}]}`))
	f.Add([]byte(`{"id":"20261124T031500Z-1a2b3c","status":"complete","objects":[{"id":"0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a","format":"raw","md5":"` + strings.Repeat("0b", 16) + `","size":5,"raw_size":5}]}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`[]`))
	f.Add([]byte{0x28, 0xb5, 0x2f, 0xfd})
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := parseManifest(name, strings.NewReader(string(data)))
		if err != nil {
			return
		}
		if manifestName(m.ID) != name {
			t.Errorf("accepted manifest %q from %s", m.ID, name)
		}
		for _, o := range m.Objects {
			if n := o.Name(); n == "" || path.Clean(n) != n || !strings.HasPrefix(n, "data/") {
				t.Errorf("accepted object id %q (name %q)", o.ID, n)
			}
			// A reader checks the one checksum its format has: it must be there.
			if o.Format == FormatRaw && (len(o.MD5) != 32 || o.SHA256 != "" || o.Size != o.RawSize) || o.Format == "" && len(o.SHA256) != 64 || o.Format != "" && o.Format != FormatRaw {
				t.Errorf("accepted object %+v", o.ObjectRef)
			}
		}
		_ = m.Totals()
		// What is accepted can be authenticated: encoding it is deterministic.
		if _, err := manifestMAC([]byte("k"), m); err != nil {
			t.Errorf("accepted manifest does not encode: %v", err)
		}
	})
}
