package zookeeper

import (
	"bytes"
	"errors"
	"io"
	"reflect"
)

// NodeSource yields nodes in record order, io.EOF after the last: a stored record or a live walk.
type NodeSource interface {
	Next() (*Node, error)
}

// Change is one difference between two trees.
type Change struct {
	Kind string   `json:"kind"` // "added", "removed" or "changed"
	Path string   `json:"path"`
	What []string `json:"what,omitempty"` // for "changed": "data", "acl", "ephemeral"
}

// DiffOptions tune what counts as a difference.
type DiffOptions struct {
	// IncludeEphemeral compares ephemeral nodes too. They come and go with sessions (a replica's
	// is_active), so by default they are noise.
	IncludeEphemeral bool
}

// Diff merges two sources in one pass, calling fn for each difference from a to b.
func Diff(a, b NodeSource, opts DiffOptions, fn func(Change) error) error {
	na, err := nextKept(a, opts)
	if err != nil {
		return err
	}
	nb, err := nextKept(b, opts)
	if err != nil {
		return err
	}
	for na != nil || nb != nil {
		var c int
		switch {
		case na == nil:
			c = 1
		case nb == nil:
			c = -1
		default:
			c = comparePaths(na.Path, nb.Path)
		}
		switch {
		case c < 0:
			err = fn(Change{Kind: "removed", Path: na.Path})
			na, err = advance(a, opts, err)
		case c > 0:
			err = fn(Change{Kind: "added", Path: nb.Path})
			nb, err = advance(b, opts, err)
		default:
			if what := changed(na, nb); len(what) > 0 {
				if err := fn(Change{Kind: "changed", Path: na.Path, What: what}); err != nil {
					return err
				}
			}
			if na, err = nextKept(a, opts); err != nil {
				return err
			}
			nb, err = nextKept(b, opts)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func advance(src NodeSource, opts DiffOptions, prev error) (*Node, error) {
	if prev != nil {
		return nil, prev
	}
	return nextKept(src, opts)
}

// nextKept returns the next node the diff considers, nil at the end.
func nextKept(src NodeSource, opts DiffOptions) (*Node, error) {
	for {
		n, err := src.Next()
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		if n.Ephemeral && !opts.IncludeEphemeral {
			continue
		}
		return n, nil
	}
}

func changed(a, b *Node) []string {
	var what []string
	if !bytes.Equal(a.Data, b.Data) {
		what = append(what, "data")
	}
	if !reflect.DeepEqual(a.ACL, b.ACL) {
		what = append(what, "acl")
	}
	if a.Ephemeral != b.Ephemeral {
		what = append(what, "ephemeral")
	}
	return what
}
