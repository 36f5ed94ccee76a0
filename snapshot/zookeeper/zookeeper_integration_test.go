package zookeeper

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"

	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/tracevault/tracevault/internal/devstack"
)

func connectStack(t testing.TB) (*zk.Conn, []string) {
	t.Helper()
	env := devstack.Require(t)
	servers := []string{env.ZK}
	conn, err := Connect(context.Background(), servers, 10*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	return conn, servers
}

// scratchRoot creates a unique root for one test and removes it afterwards.
func scratchRoot(t testing.TB, conn *zk.Conn) string {
	t.Helper()
	root := "/tracevault-test/" + devstack.ScratchName(strings.ToLower(strings.NewReplacer("/", "_").Replace(t.Name())))
	mustCreate(t, conn, "/tracevault-test", nil, 0)
	mustCreate(t, conn, root, nil, 0)
	t.Cleanup(func() { deleteTree(conn, root) })
	return root
}

func mustCreate(t testing.TB, conn *zk.Conn, p string, data []byte, flags int32) {
	t.Helper()
	if _, err := conn.Create(p, data, flags, zk.WorldACL(zk.PermAll)); err != nil && !errors.Is(err, zk.ErrNodeExists) {
		t.Fatalf("create %s: %v", p, err)
	}
}

func deleteTree(conn *zk.Conn, p string) {
	children, _, _ := conn.Children(p)
	for _, c := range children {
		deleteTree(conn, joinPath(p, c))
	}
	_ = conn.Delete(p, -1)
}

// addTable builds the subtree ClickHouse creates for one replicated table.
func addTable(t testing.TB, conn *zk.Conn, base, table string) []string {
	t.Helper()
	tp := base + "/" + table
	paths := []string{tp, tp + "/columns", tp + "/metadata", tp + "/replicas", tp + "/replicas/ch1", tp + "/replicas/ch1/host", tp + "/replicas/ch1/parts", tp + "/log"}
	for _, p := range paths {
		mustCreate(t, conn, p, []byte("content of "+p), 0)
	}
	mustCreate(t, conn, tp+"/replicas/ch1/is_active", []byte("uuid"), zk.FlagEphemeral)
	return paths
}

// naiveWalk is an independent, sequential reading of the live tree: the oracle for Record.
func naiveWalk(t testing.TB, conn *zk.Conn, p string, out map[string][]byte) {
	data, _, err := conn.Get(p)
	if err != nil {
		t.Fatalf("get %s: %v", p, err)
	}
	out[p] = data
	children, _, err := conn.Children(p)
	if err != nil {
		t.Fatalf("children %s: %v", p, err)
	}
	for _, c := range children {
		naiveWalk(t, conn, joinPath(p, c), out)
	}
}

func record(t testing.TB, conn *zk.Conn, opts RecordOptions) ([]*Node, RecordSummary) {
	t.Helper()
	var buf bytes.Buffer
	sum, err := Record(context.Background(), conn, opts, &buf)
	if err != nil {
		t.Fatalf("record: %v", err)
	}
	var nodes []*Node
	r := NewReader(&buf)
	for {
		n, err := r.Next()
		if err == io.EOF {
			return nodes, sum
		}
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, n)
	}
}

func TestRecordMatchesLiveTree(t *testing.T) {
	conn, _ := connectStack(t)
	root := scratchRoot(t, conn)
	for _, tbl := range []string{"traces", "observations", "scores", "a-c"} {
		addTable(t, conn, root, tbl)
	}
	nodes, sum := record(t, conn, RecordOptions{Roots: []string{root}, Parallel: 4})

	live := map[string][]byte{}
	naiveWalk(t, conn, root, live)
	if len(nodes) != len(live) || sum.Nodes != int64(len(live)) {
		t.Fatalf("recorded %d nodes (summary %d), live tree has %d", len(nodes), sum.Nodes, len(live))
	}
	for i, n := range nodes {
		if want, ok := live[n.Path]; !ok || !bytes.Equal(want, n.Data) {
			t.Errorf("%s: recorded %q, live %q (present %v)", n.Path, n.Data, want, ok)
		}
		if i > 0 && comparePaths(nodes[i-1].Path, n.Path) >= 0 {
			t.Errorf("record out of walk order: %s before %s", nodes[i-1].Path, n.Path)
		}
		if strings.HasSuffix(n.Path, "/is_active") != n.Ephemeral {
			t.Errorf("%s: ephemeral = %v", n.Path, n.Ephemeral)
		}
	}
	if sum.Ephemeral != 4 || sum.MaxZxid == 0 {
		t.Errorf("summary: %+v", sum)
	}
}

func TestRecordExcludesSubtrees(t *testing.T) {
	conn, _ := connectStack(t)
	root := scratchRoot(t, conn)
	addTable(t, conn, root, "traces")
	mustCreate(t, conn, root+"/traces/log/log-0000000001", []byte("entry"), 0)
	nodes, sum := record(t, conn, RecordOptions{Roots: []string{root}, Exclude: []string{root + "/*/log"}})
	for _, n := range nodes {
		if strings.Contains(n.Path, "/log/") {
			t.Errorf("excluded node recorded: %s", n.Path)
		}
		if strings.HasSuffix(n.Path, "/log") && !n.ChildrenExcluded {
			t.Errorf("%s should be marked children_excluded", n.Path)
		}
	}
	if sum.Pruned != 1 {
		t.Errorf("pruned %d subtrees, want 1", sum.Pruned)
	}
}

func TestDiffReportsAddedTableAndChanges(t *testing.T) {
	conn, _ := connectStack(t)
	root := scratchRoot(t, conn)
	addTable(t, conn, root, "traces")
	a, _ := record(t, conn, RecordOptions{Roots: []string{root}})

	added := addTable(t, conn, root, "scores")
	if _, err := conn.Set(root+"/traces/metadata", []byte("altered"), -1); err != nil {
		t.Fatal(err)
	}
	b, _ := record(t, conn, RecordOptions{Roots: []string{root}})

	var got []Change
	err := Diff(&sliceSource{nodes: a}, &sliceSource{nodes: b}, DiffOptions{}, func(c Change) error { got = append(got, c); return nil })
	if err != nil {
		t.Fatal(err)
	}
	var want []Change
	for _, p := range added {
		want = append(want, Change{Kind: "added", Path: p})
	}
	want = append(want, Change{Kind: "changed", Path: root + "/traces/metadata", What: []string{"data"}})
	sortChanges(got)
	sortChanges(want)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("diff:\n got %v\nwant %v", got, want)
	}

	// The same diff backwards reports removals; ephemeral nodes show up only when asked.
	var removed, withEphemeral int
	_ = Diff(&sliceSource{nodes: b}, &sliceSource{nodes: a}, DiffOptions{}, func(c Change) error {
		if c.Kind == "removed" {
			removed++
		}
		return nil
	})
	_ = Diff(&sliceSource{nodes: a}, &sliceSource{nodes: b}, DiffOptions{IncludeEphemeral: true}, func(Change) error { withEphemeral++; return nil })
	if removed != len(added) || withEphemeral != len(want)+1 {
		t.Errorf("reverse diff removed %d (want %d); with ephemeral %d changes (want %d)", removed, len(added), withEphemeral, len(want)+1)
	}
}

func TestRestoreRecreatesPersistentNodes(t *testing.T) {
	conn, _ := connectStack(t)
	root := scratchRoot(t, conn)
	addTable(t, conn, root, "traces")
	before, _ := record(t, conn, RecordOptions{Roots: []string{root}})

	_, err := Restore(context.Background(), conn, &sliceSource{nodes: before}, RestoreOptions{Root: root})
	if !errors.Is(err, ErrNodesExist) {
		t.Fatalf("restore over existing nodes without force: %v, want ErrNodesExist", err)
	}
	// A dry run shows the plan and the refusal instead of refusing, and counts nodes that exist
	// as kept (or updated with Replace), not as created.
	persistent := int64(len(before) - 1)
	for _, replace := range []bool{false, true} {
		rep, err := Restore(context.Background(), conn, &sliceSource{nodes: before}, RestoreOptions{Root: root, DryRun: true, Replace: replace})
		if err != nil {
			t.Fatalf("dry run (replace %v): %v, want the plan", replace, err)
		}
		want := RestoreReport{Existing: persistent, Ephemeral: 1}
		if replace {
			want = RestoreReport{Updated: persistent, Ephemeral: 1}
		}
		if refused := rep.WouldRefuse != ""; refused == replace {
			t.Errorf("dry run (replace %v) would refuse %q", replace, rep.WouldRefuse)
		}
		rep.WouldRefuse = ""
		if rep != want {
			t.Errorf("dry run (replace %v) report %+v, want %+v", replace, rep, want)
		}
	}
	deleteTree(conn, root)
	rep, err := Restore(context.Background(), conn, &sliceSource{nodes: before}, RestoreOptions{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Created != int64(len(before)-1) || rep.Ephemeral != 1 {
		t.Errorf("restore report %+v; want %d created, 1 ephemeral skipped", rep, len(before)-1)
	}
	after, _ := record(t, conn, RecordOptions{Roots: []string{root}})
	var diffs []Change
	_ = Diff(&sliceSource{nodes: before}, &sliceSource{nodes: after}, DiffOptions{}, func(c Change) error { diffs = append(diffs, c); return nil })
	if len(diffs) != 0 {
		t.Errorf("restored tree differs from the record: %v", diffs)
	}
}

func TestHealth(t *testing.T) {
	_, servers := connectStack(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()

	start := time.Now()
	hs := Health(context.Background(), append(servers, dead), Thresholds{ZnodeCount: 1}, 3*time.Second)
	if time.Since(start) > 5*time.Second {
		t.Errorf("health took %s with a dead server; each server must be bounded by the timeout", time.Since(start))
	}
	live, down := hs[0], hs[1]
	if !live.OK || live.Kind != KindZooKeeper || live.Mode != "standalone" || live.Version == "" || live.ZnodeCount < 2 || live.LastZxid == 0 || live.ReadOnly {
		t.Errorf("live server: %+v", live)
	}
	if len(live.Warnings) != 1 || !strings.Contains(live.Warnings[0], "znode count") {
		t.Errorf("threshold 1 should warn about the znode count: %v", live.Warnings)
	}
	if down.OK || !strings.Contains(down.Error, "does not answer") {
		t.Errorf("dead server: %+v", down)
	}
}

func TestComparePathsMatchesWalkOrder(t *testing.T) {
	paths := []string{"/a-c", "/a/b", "/", "/a", "/b", "/a/b/c", "/a/a"}
	sort.Slice(paths, func(i, j int) bool { return comparePaths(paths[i], paths[j]) < 0 })
	want := "[/ /a /a/a /a/b /a/b/c /a-c /b]"
	if got := fmt.Sprint(paths); got != want {
		t.Errorf("order %s, want %s", got, want)
	}
}

// BenchmarkRecord100k records a scratch tree of 100,000 nodes (100 parents x 1000 children,
// 100 bytes each) and reports nodes/s and peak heap. Target: under 30 s and 128 MiB.
func BenchmarkRecord100k(b *testing.B) {
	conn, _ := connectStack(b)
	root := scratchRoot(b, conn)
	createMany(b, conn, root, 100, 1000)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		stop := samplePeakHeap()
		start := time.Now()
		sum, err := Record(context.Background(), conn, RecordOptions{Roots: []string{root}}, io.Discard)
		if err != nil {
			b.Fatal(err)
		}
		peak := stop()
		if sum.Nodes != 100_000+100+1 {
			b.Fatalf("recorded %d nodes", sum.Nodes)
		}
		b.ReportMetric(float64(sum.Nodes)/time.Since(start).Seconds(), "nodes/s")
		b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
	}
	b.StopTimer()
	deleteMany(conn, root, 100, 1000)
}

func createMany(b *testing.B, conn *zk.Conn, root string, parents, children int) {
	data := bytes.Repeat([]byte("x"), 100)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for p := 0; p < parents; p++ {
		parent := fmt.Sprintf("%s/p%03d", root, p)
		mustCreate(b, conn, parent, nil, 0)
		for c := 0; c < children; c++ {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				_, _ = conn.Create(fmt.Sprintf("%s/c%04d", parent, c), data, 0, zk.WorldACL(zk.PermAll))
			}()
		}
	}
	wg.Wait()
}

func deleteMany(conn *zk.Conn, root string, parents, children int) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for p := 0; p < parents; p++ {
		for c := 0; c < children; c++ {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				_ = conn.Delete(fmt.Sprintf("%s/p%03d/c%04d", root, p, c), -1)
			}()
		}
	}
	wg.Wait()
}

// samplePeakHeap samples the heap in use until the returned function is called.
func samplePeakHeap() func() uint64 {
	var peak uint64
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			peak = max(peak, m.HeapInuse)
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 { close(done); <-finished; return peak }
}

type sliceSource struct {
	nodes []*Node
	i     int
}

func (s *sliceSource) Next() (*Node, error) {
	if s.i >= len(s.nodes) {
		return nil, io.EOF
	}
	s.i++
	return s.nodes[s.i-1], nil
}

func sortChanges(cs []Change) {
	sort.Slice(cs, func(i, j int) bool { return cs[i].Kind+cs[i].Path < cs[j].Kind+cs[j].Path })
}
