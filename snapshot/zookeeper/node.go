package zookeeper

import (
	"path"
	"strings"

	"github.com/go-zookeeper/zk"
)

// Node is one znode as recorded: one JSON line of a record object.
type Node struct {
	Path string `json:"path"`
	Data []byte `json:"data,omitempty"` // base64 in JSON: znode data is binary
	Stat Stat   `json:"stat"`
	ACL  []ACL  `json:"acl,omitempty"`
	// Ephemeral nodes belong to a live session (a replica's is_active, a lock); they are
	// recorded for diagnosis but never restored.
	Ephemeral bool `json:"ephemeral,omitempty"`
	// ChildrenExcluded marks a node whose subtree matched an exclude glob.
	ChildrenExcluded bool `json:"children_excluded,omitempty"`
}

// Stat is zk.Stat with JSON names.
type Stat struct {
	Czxid          int64 `json:"czxid"`
	Mzxid          int64 `json:"mzxid"`
	Pzxid          int64 `json:"pzxid"`
	Ctime          int64 `json:"ctime_ms"`
	Mtime          int64 `json:"mtime_ms"`
	Version        int32 `json:"version"`
	Cversion       int32 `json:"cversion"`
	Aversion       int32 `json:"aversion"`
	EphemeralOwner int64 `json:"ephemeral_owner,omitempty"`
	NumChildren    int32 `json:"num_children"`
	DataLength     int32 `json:"data_length"`
}

// ACL is one access control entry.
type ACL struct {
	Perms  int32  `json:"perms"`
	Scheme string `json:"scheme"`
	ID     string `json:"id"`
}

func statOf(s *zk.Stat) Stat {
	return Stat{Czxid: s.Czxid, Mzxid: s.Mzxid, Pzxid: s.Pzxid, Ctime: s.Ctime, Mtime: s.Mtime,
		Version: s.Version, Cversion: s.Cversion, Aversion: s.Aversion, EphemeralOwner: s.EphemeralOwner,
		NumChildren: s.NumChildren, DataLength: s.DataLength}
}

func aclsOf(acls []zk.ACL) []ACL {
	out := make([]ACL, len(acls))
	for i, a := range acls {
		out[i] = ACL{Perms: a.Perms, Scheme: a.Scheme, ID: a.ID}
	}
	return out
}

func zkACLs(acls []ACL) []zk.ACL {
	if len(acls) == 0 {
		return zk.WorldACL(zk.PermAll)
	}
	out := make([]zk.ACL, len(acls))
	for i, a := range acls {
		out[i] = zk.ACL{Perms: a.Perms, Scheme: a.Scheme, ID: a.ID}
	}
	return out
}

// comparePaths orders paths as a depth-first walk with sorted children visits them, which is
// the order records are written in. Plain string order differs ("/a-c" < "/a/b"), and diff
// merges two records in one pass, so both must agree on this order.
func comparePaths(a, b string) int {
	as, bs := strings.Split(strings.Trim(a, "/"), "/"), strings.Split(strings.Trim(b, "/"), "/")
	if a == "/" {
		as = nil
	}
	if b == "/" {
		bs = nil
	}
	for i := 0; i < len(as) && i < len(bs); i++ {
		if c := strings.Compare(as[i], bs[i]); c != 0 {
			return c
		}
	}
	return len(as) - len(bs)
}

// excluded reports whether p matches one of the globs (path.Match, "*" within one segment).
func excluded(p string, globs []string) bool {
	for _, g := range globs {
		if ok, _ := path.Match(g, p); ok {
			return true
		}
	}
	return false
}

func joinPath(parent, child string) string {
	if parent == "/" {
		return "/" + child
	}
	return parent + "/" + child
}
