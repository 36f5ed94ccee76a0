package zookeeper

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

// readAll reads a record to its end, at most limit nodes.
func readAll(data []byte, limit int) ([]*Node, error) {
	r := NewReader(bytes.NewReader(data))
	var nodes []*Node
	for len(nodes) < limit {
		n, err := r.Next()
		if errors.Is(err, io.EOF) {
			return nodes, nil
		}
		if err != nil {
			return nodes, err
		}
		nodes = append(nodes, n)
	}
	return nodes, nil
}

func TestReaderRefusesWhatRecordNeverWrites(t *testing.T) {
	for _, tc := range []struct {
		name, record string
		want         error // nil: reads cleanly
		nodes        int
	}{
		{"empty", "", nil, 0},
		{"a walk", `{"path":"/a"} {"path":"/a/b"} {"path":"/a/b/c"} {"path":"/a-c"} {"path":"/b"}`, nil, 5},
		{"root", `{"path":"/"} {"path":"/zookeeper"}`, nil, 2},
		{"relative", `{"path":"a"}`, ErrBadRecord, 0},
		{"no path", `{"data":"eA=="}`, ErrBadRecord, 0},
		{"dot-dot", `{"path":"/clickhouse/../etc"}`, ErrBadRecord, 0},
		{"empty segment", `{"path":"/a//b"}`, ErrBadRecord, 0},
		{"trailing slash", `{"path":"/a/"}`, ErrBadRecord, 0},
		{"control character", `{"path":"/a\u0001"}`, ErrBadRecord, 0},
		{"out of order", `{"path":"/b"} {"path":"/a"}`, ErrBadRecord, 1},
		{"child before parent", `{"path":"/a/b"} {"path":"/a"}`, ErrBadRecord, 1},
		{"repeated", `{"path":"/a"} {"path":"/a"}`, ErrBadRecord, 1},
		{"truncated", `{"path":"/a"} {"path":"/b`, io.ErrUnexpectedEOF, 1},
		{"not json", "\x00\x01garbage", nil, 0}, // any error; checked below
	} {
		t.Run(tc.name, func(t *testing.T) {
			nodes, err := readAll([]byte(tc.record), 100)
			switch {
			case tc.name == "not json":
				if err == nil {
					t.Fatal("garbage read as a record")
				}
			case tc.want == nil && err != nil:
				t.Fatalf("read: %v", err)
			case tc.want != nil && !errors.Is(err, tc.want):
				t.Fatalf("read: %v, want %v", err, tc.want)
			}
			if len(nodes) != tc.nodes {
				t.Errorf("%d nodes before the end or error, want %d", len(nodes), tc.nodes)
			}
		})
	}
}

func TestOuterRoots(t *testing.T) {
	for _, tc := range []struct{ in, want []string }{
		{[]string{"/clickhouse/tables", "/clickhouse", "/b"}, []string{"/b", "/clickhouse"}},
		{[]string{"/a", "/a", "/a-c", "/a/b"}, []string{"/a", "/a-c"}},
		{[]string{"/x", "/"}, []string{"/"}},
	} {
		if got := outerRoots(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("outerRoots(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// FuzzReader: whatever bytes a repository holds, the reader never panics, hands on only valid
// paths in strictly increasing walk order, and the nodes it accepts survive a round trip
// through the encoding Record writes.
func FuzzReader(f *testing.F) {
	f.Add([]byte(`{"path":"/clickhouse","stat":{"czxid":1,"num_children":1},"acl":[{"perms":31,"scheme":"world","id":"anyone"}]}
{"path":"/clickhouse/tables","data":"aGVsbG8=","stat":{"mzxid":7},"ephemeral":true}
{"path":"/clickhouse/tables/x","children_excluded":true}
`))
	f.Add([]byte(`{"path":"/"}{"path":"/a"}`))
	f.Add([]byte(`{"path":"/a/../b"}`))
	f.Add([]byte(`{"path":"/b"} {"path":"/a"}`))
	f.Add([]byte(`{"path":"/a","data":"!!"}`))
	f.Add([]byte(`[1,2,3]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		nodes, _ := readAll(data, 10000)
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		for i, n := range nodes {
			if err := validPath(n.Path); err != nil {
				t.Fatalf("node %d has path %q: %v", i, n.Path, err)
			}
			if i > 0 && comparePaths(nodes[i-1].Path, n.Path) >= 0 {
				t.Fatalf("node %d %q not after %q", i, n.Path, nodes[i-1].Path)
			}
			if err := enc.Encode(n); err != nil {
				t.Fatalf("encode node %d: %v", i, err)
			}
		}
		again, err := readAll(buf.Bytes(), 10000)
		if err != nil {
			t.Fatalf("re-read of the re-encoded nodes: %v", err)
		}
		if len(again) != len(nodes) {
			t.Fatalf("round trip gave %d nodes, want %d", len(again), len(nodes))
		}
		for i := range nodes {
			if !reflect.DeepEqual(normal(nodes[i]), normal(again[i])) {
				t.Fatalf("node %d changed in the round trip: %+v -> %+v", i, nodes[i], again[i])
			}
		}
	})
}

// normal treats an empty and a missing data or ACL list alike: omitempty drops both.
func normal(n *Node) Node {
	c := *n
	if len(c.Data) == 0 {
		c.Data = nil
	}
	if len(c.ACL) == 0 {
		c.ACL = nil
	}
	return c
}

func TestValidPathMatchesZooKeeper(t *testing.T) {
	for p, ok := range map[string]bool{"/": true, "/clickhouse/tables/0/t": true, "/a b": true, "/é": true,
		"": false, "a": false, "//": false, "/a/./b": false, "/a\x7f": false, "/\ufff5": false, strings.Repeat("/", 3): false} {
		if err := validPath(p); (err == nil) != ok {
			t.Errorf("validPath(%q) = %v, want ok=%v", p, err, ok)
		}
	}
}

// TestRestoreSkipsTheServersOwnSubtrees: a record walked from / holds ZooKeeper's /zookeeper and
// ClickHouse Keeper's /keeper, which each server creates itself and refuses writes under: a
// restore passes them by without a request.
func TestRestoreSkipsTheServersOwnSubtrees(t *testing.T) {
	for p, want := range map[string]bool{"/keeper": true, "/keeper/api_version": true, "/zookeeper/quota": true, "/keepers": false, "/clickhouse/keeper": false, "/": false} {
		if systemPath(p) != want {
			t.Errorf("systemPath(%s) = %v, want %v", p, !want, want)
		}
	}
	var nodes []*Node
	for _, p := range []string{"/keeper", "/keeper/api_version", "/keeper/feature_flags", "/zookeeper", "/zookeeper/quota"} {
		nodes = append(nodes, &Node{Path: p})
	}
	// No connection: a request for any of them would panic.
	rep, err := Restore(context.Background(), nil, &sliceSource{nodes: nodes}, RestoreOptions{Root: "/", Replace: true})
	if err != nil || rep.System != 5 || rep.Created+rep.Updated+rep.Existing != 0 {
		t.Errorf("report %+v, %v: want the 5 nodes of /keeper and /zookeeper skipped", rep, err)
	}
}
