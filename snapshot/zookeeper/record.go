package zookeeper

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-zookeeper/zk"
	"golang.org/x/sync/errgroup"
)

// RecordOptions choose what a record holds.
type RecordOptions struct {
	Roots   []string // subtrees to walk, e.g. /clickhouse
	Exclude []string // globs of high-churn subtrees: the node is kept, its descendants are not
	// Parallel bounds the requests in flight. ZooKeeper answers pipelined requests on one
	// session in order, so a window of them hides the round trip per node.
	Parallel int
}

// RecordSummary is what a record's manifest section says about it.
type RecordSummary struct {
	Roots     []string  `json:"roots"`
	Exclude   []string  `json:"exclude,omitempty"`
	Nodes     int64     `json:"nodes"`
	Ephemeral int64     `json:"ephemeral"`
	DataBytes int64     `json:"data_bytes"`
	Pruned    int64     `json:"pruned_subtrees"`
	MaxZxid   int64     `json:"max_zxid"` // highest czxid/mzxid/pzxid seen: the record is at least this recent
	Start     time.Time `json:"start"`
	End       time.Time `json:"end"`
}

// Record walks the roots depth-first, children in sorted order, and writes one JSON line per
// node to w. Memory is bounded by one window of siblings per tree level, not by the tree's size.
// Nodes deleted while the walk runs are skipped: ClickHouse churns its queues constantly.
func Record(ctx context.Context, conn *zk.Conn, opts RecordOptions, w io.Writer) (RecordSummary, error) {
	if opts.Parallel <= 0 {
		opts.Parallel = 32
	}
	bw := bufio.NewWriterSize(w, 256<<10)
	r := &recorder{conn: conn, opts: opts, enc: json.NewEncoder(bw)}
	r.sum = RecordSummary{Roots: opts.Roots, Exclude: opts.Exclude, Start: time.Now().UTC()}
	for _, root := range outerRoots(opts.Roots) {
		n, children, err := r.fetch(root)
		switch {
		case errors.Is(err, zk.ErrNoNode):
			continue // a root that does not exist yet (no replicated table) records as empty
		case err != nil:
			return r.sum, err
		}
		if err := r.emit(n); err != nil {
			return r.sum, err
		}
		if err := r.walk(ctx, root, children); err != nil {
			return r.sum, err
		}
	}
	if err := bw.Flush(); err != nil {
		return r.sum, fmt.Errorf("write zookeeper record: %w", err)
	}
	r.sum.End = time.Now().UTC()
	return r.sum, nil
}

// outerRoots sorts roots in walk order and drops any root at or under another: walking it
// twice would record its nodes twice, out of order, and Reader refuses such a record.
func outerRoots(roots []string) []string {
	sorted := append([]string(nil), roots...)
	sort.Slice(sorted, func(i, j int) bool { return comparePaths(sorted[i], sorted[j]) < 0 })
	var out []string
	for _, r := range sorted {
		if len(out) > 0 {
			last := out[len(out)-1]
			if r == last || last == "/" || strings.HasPrefix(r, last+"/") {
				continue
			}
		}
		out = append(out, r)
	}
	return out
}

type recorder struct {
	conn *zk.Conn
	opts RecordOptions
	enc  *json.Encoder
	sum  RecordSummary
}

type fetched struct {
	node     *Node
	children []string
	err      error
}

func (r *recorder) walk(ctx context.Context, parent string, children []string) error {
	window := r.opts.Parallel * 4
	for start := 0; start < len(children); start += window {
		batch := children[start:min(start+window, len(children))]
		results := make([]fetched, len(batch))
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(r.opts.Parallel)
		for i, name := range batch {
			g.Go(func() error {
				if err := gctx.Err(); err != nil {
					return err
				}
				n, ch, err := r.fetch(joinPath(parent, name))
				results[i] = fetched{n, ch, err}
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return fmt.Errorf("record zookeeper under %s: %w", parent, err)
		}
		for _, f := range results {
			if errors.Is(f.err, zk.ErrNoNode) {
				continue
			}
			if f.err != nil {
				return f.err
			}
			if err := r.emit(f.node); err != nil {
				return err
			}
			if err := r.walk(ctx, f.node.Path, f.children); err != nil {
				return err
			}
		}
	}
	return nil
}

// fetch reads one node: its ACL and stat, its data when it has any, and its children when it
// has some and is not excluded. Leaves thus cost one round trip.
func (r *recorder) fetch(p string) (*Node, []string, error) {
	acl, st, err := r.conn.GetACL(p)
	if err != nil {
		return nil, nil, fmt.Errorf("read acl of %s: %w", p, noAuthHint(err))
	}
	n := &Node{Path: p, ACL: aclsOf(acl)}
	if st.DataLength > 0 {
		data, st2, err := r.conn.Get(p)
		if err != nil {
			return nil, nil, fmt.Errorf("read %s: %w", p, noAuthHint(err))
		}
		n.Data, st = data, st2
	}
	n.Stat = statOf(st)
	n.Ephemeral = st.EphemeralOwner != 0
	if st.NumChildren == 0 {
		return n, nil, nil
	}
	if excluded(p, r.opts.Exclude) {
		n.ChildrenExcluded = true
		return n, nil, nil
	}
	children, _, err := r.conn.Children(p)
	if err != nil {
		return nil, nil, fmt.Errorf("list children of %s: %w", p, noAuthHint(err))
	}
	sort.Strings(children)
	return n, children, nil
}

// noAuthHint names the fix for a node whose ACL refuses the session: ClickHouse connected with
// an identity (<zookeeper><identity>, which the official ClickHouse operator always sets) creates
// its nodes readable by that identity alone, on ZooKeeper and ClickHouse Keeper alike.
func noAuthHint(err error) error {
	if !errors.Is(err, zk.ErrNoAuth) {
		return err
	}
	return fmt.Errorf("%w: the node's ACL admits only the identity ClickHouse connects with; set [zookeeper] identity to the same \"user:password\" as ClickHouse's <zookeeper><identity> (with the official ClickHouse operator: key keeper-identity of the ClickHouseCluster's Secret)", err)
}

func (r *recorder) emit(n *Node) error {
	if err := r.enc.Encode(n); err != nil {
		return fmt.Errorf("write zookeeper record node %s: %w", n.Path, err)
	}
	r.sum.Nodes++
	r.sum.DataBytes += int64(len(n.Data))
	if n.Ephemeral {
		r.sum.Ephemeral++
	}
	if n.ChildrenExcluded {
		r.sum.Pruned++
	}
	r.sum.MaxZxid = max(r.sum.MaxZxid, n.Stat.Czxid, n.Stat.Mzxid, n.Stat.Pzxid)
	return nil
}

// Reader streams the nodes of a record back, in record order. A record comes from the
// repository, which anyone with write access can edit, so each node is checked before it is
// handed on: its path must be one ZooKeeper accepts, and paths must follow the record's order
// strictly (restore creates parents before children, and diff merges in one pass on that order).
type Reader struct {
	dec  *json.Decoder
	prev string
	n    int64
}

// NewReader reads a record written by Record.
func NewReader(r io.Reader) *Reader {
	return &Reader{dec: json.NewDecoder(bufio.NewReaderSize(r, 256<<10))}
}

// ErrBadRecord means a record holds something Record never writes.
var ErrBadRecord = errors.New("not a valid zookeeper record")

// Next returns the next node, or io.EOF after the last.
func (r *Reader) Next() (*Node, error) {
	var n Node
	if err := r.dec.Decode(&n); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.EOF
		}
		return nil, fmt.Errorf("read zookeeper record after node %d: %w", r.n, err)
	}
	r.n++
	if err := validPath(n.Path); err != nil {
		return nil, fmt.Errorf("read zookeeper record node %d: %w: path %.200q %v; the record is damaged or was edited: take another from 'tracevault list'", r.n, ErrBadRecord, n.Path, err)
	}
	if r.prev != "" && comparePaths(r.prev, n.Path) >= 0 {
		return nil, fmt.Errorf("read zookeeper record node %d: %w: %.200q comes after %.200q, out of the walk's order; the record is damaged or was edited", r.n, ErrBadRecord, n.Path, r.prev)
	}
	r.prev = n.Path
	return &n, nil
}

// validPath applies ZooKeeper's own rule (PathUtils.validatePath): absolute, no empty, "." or
// ".." segment, no trailing slash, and none of the characters the server refuses.
func validPath(p string) error {
	if !strings.HasPrefix(p, "/") {
		return errors.New("is not absolute")
	}
	if p == "/" {
		return nil
	}
	if !utf8.ValidString(p) {
		return errors.New("is not UTF-8")
	}
	for _, seg := range strings.Split(p[1:], "/") {
		if seg == "" || seg == "." || seg == ".." {
			return errors.New(`has an empty, "." or ".." segment`)
		}
	}
	for _, c := range p {
		if c < 0x20 || (c >= 0x7f && c <= 0x9f) || (c >= 0xd800 && c <= 0xf8ff) || (c >= 0xfff0 && c <= 0xffff) {
			return fmt.Errorf("holds the character %U, which ZooKeeper refuses", c)
		}
	}
	return nil
}
