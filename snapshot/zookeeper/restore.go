package zookeeper

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/go-zookeeper/zk"

	"github.com/tracevault/tracevault/internal/tempfile"
)

// RestoreOptions bound a metadata restore.
type RestoreOptions struct {
	Root    string // only nodes at or under this path are restored
	Replace bool   // overwrite the data of nodes that already exist
	// DryRun counts what would be created, updated or kept without writing, and says what the
	// restore would refuse instead of refusing.
	DryRun bool
}

// RestoreReport says what a restore did.
type RestoreReport struct {
	Created   int64 `json:"created"`
	Updated   int64 `json:"updated"`
	Existing  int64 `json:"existing_skipped"`
	Ephemeral int64 `json:"ephemeral_skipped"`
	System    int64 `json:"system_skipped"` // under /zookeeper or /keeper: the server's own
	// WouldRefuse, from a dry run, is the refusal the restore itself would stop with.
	WouldRefuse string `json:"would_refuse,omitempty"`
}

// ErrNodesExist means the target already holds nodes under the root and --replace was not given.
var ErrNodesExist = errors.New("nodes already exist under the root")

// Restore recreates the persistent nodes of a record under opts.Root, parents before children
// (the record's order guarantees it). It is for an empty or lost ensemble: ClickHouse replicas
// re-register themselves, so their ephemeral nodes are never restored, and a live replica's
// metadata is better rebuilt with restore-replica than overwritten from an old record.
func Restore(ctx context.Context, conn *zk.Conn, src NodeSource, opts RestoreOptions) (RestoreReport, error) {
	var rep RestoreReport
	root := restoreRoot(opts.Root)
	if !opts.Replace {
		if err := refusal(conn, root); err != nil {
			if !opts.DryRun || !errors.Is(err, ErrNodesExist) {
				return rep, err
			}
			// A dry run shows the plan and what would be refused, rather than refusing.
			rep.WouldRefuse = err.Error()
		}
	}
	if err := ensureParents(conn, root, opts.DryRun); err != nil {
		return rep, err
	}
	for {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		n, err := nextKept(src, DiffOptions{IncludeEphemeral: true})
		if err != nil {
			return rep, err
		}
		if n == nil {
			return rep, nil
		}
		if n.Path != root && !strings.HasPrefix(n.Path, strings.TrimSuffix(root, "/")+"/") {
			continue
		}
		if n.Ephemeral {
			rep.Ephemeral++
			continue
		}
		if systemPath(n.Path) {
			rep.System++
			continue
		}
		if opts.DryRun {
			exists, _, err := conn.Exists(n.Path)
			if err != nil {
				return rep, fmt.Errorf("check %s for the dry run: %w", n.Path, err)
			}
			countDryRun(exists, opts.Replace, &rep)
			continue
		}
		if err := restoreNode(conn, n, opts.Replace, &rep); err != nil {
			return rep, err
		}
	}
}

// Restorer restores a record read from the repository, as the other sources restore:
// NewRestorer with the options, Plan, then Execute.
type Restorer struct {
	conn *zk.Conn
	opts RestoreOptions
}

// NewRestorer restores into the ensemble conn is connected to.
func NewRestorer(conn *zk.Conn, opts RestoreOptions) *Restorer {
	return &Restorer{conn: conn, opts: opts}
}

// RestorePlan is a record spooled to a temporary file and checked, ready to restore. Close
// removes the file.
type RestorePlan struct {
	Root string
	file *os.File
}

// Plan copies the whole record to a temporary file and checks it: the repository compares an
// object's checksum only at its end, and Reader checks each node, so a swapped, truncated or
// edited record fails before a single node is created. Memory stays bounded.
func (r *Restorer) Plan(ctx context.Context, record io.Reader) (*RestorePlan, error) {
	if !r.opts.Replace && !r.opts.DryRun {
		// Refused before the record is read: a summary must not count a download as done
		// work for a restore that was never going to write.
		if err := refusal(r.conn, restoreRoot(r.opts.Root)); err != nil {
			return nil, err
		}
	}
	tmp, err := tempfile.Unlinked("the zookeeper record to restore")
	if err != nil {
		return nil, err
	}
	p := &RestorePlan{Root: r.opts.Root, file: tmp}
	if _, err := io.Copy(tmp, record); err != nil {
		p.Close()
		return nil, fmt.Errorf("read the zookeeper record (nothing was restored): %w", err)
	}
	if err := scan(ctx, tmp); err != nil {
		p.Close()
		return nil, fmt.Errorf("%w; nothing was restored", err)
	}
	return p, nil
}

// Execute restores the plan's record (see Restore); with DryRun it counts what it would create.
func (r *Restorer) Execute(ctx context.Context, p *RestorePlan) (RestoreReport, error) {
	if _, err := p.file.Seek(0, io.SeekStart); err != nil {
		return RestoreReport{}, fmt.Errorf("rewind the spooled zookeeper record: %w", err)
	}
	return Restore(ctx, r.conn, NewReader(p.file), r.opts)
}

// Close frees the spooled record.
func (p *RestorePlan) Close() { p.file.Close() }

// RestoreRecord plans and executes the restore of a record read from the repository.
func RestoreRecord(ctx context.Context, conn *zk.Conn, record io.Reader, opts RestoreOptions) (RestoreReport, error) {
	r := NewRestorer(conn, opts)
	p, err := r.Plan(ctx, record)
	if err != nil {
		return RestoreReport{}, err
	}
	defer p.Close()
	return r.Execute(ctx, p)
}

// scan reads a spooled record from its start to its end, checking every node.
func scan(ctx context.Context, f *os.File) error {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("rewind the spooled zookeeper record: %w", err)
	}
	r := NewReader(f)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if _, err := r.Next(); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
	}
}

// countDryRun counts a node as restoreNode would treat it: created if absent, updated if present
// and replaced, kept if present otherwise.
func countDryRun(exists, replace bool, rep *RestoreReport) {
	switch {
	case !exists:
		rep.Created++
	case replace:
		rep.Updated++
	default:
		rep.Existing++
	}
}

func restoreNode(conn *zk.Conn, n *Node, force bool, rep *RestoreReport) error {
	_, err := conn.Create(n.Path, n.Data, 0, zkACLs(n.ACL))
	switch {
	case err == nil:
		rep.Created++
	case errors.Is(err, zk.ErrNodeExists) && force:
		if _, err := conn.Set(n.Path, n.Data, -1); err != nil {
			return fmt.Errorf("overwrite %s: %w", n.Path, err)
		}
		rep.Updated++
	case errors.Is(err, zk.ErrNodeExists):
		rep.Existing++
	case errors.Is(err, zk.ErrInvalidACL):
		return fmt.Errorf("create %s with its recorded ACL %s: %w; the server refuses that scheme: ClickHouse Keeper accepts world, digest and auth only, ZooKeeper also ip, and sasl or x509 with their providers on. Restore this record into a server that has the scheme, or re-create such nodes by hand", n.Path, aclSchemes(n.ACL), err)
	default:
		return fmt.Errorf("create %s: %w", n.Path, noAuthHint(err))
	}
	return nil
}

// systemPath reports a node of the server's own subtree, which it creates itself and where it
// refuses writes: ZooKeeper's /zookeeper (quota, config), ClickHouse Keeper's /keeper
// (api_version, feature_flags, availability_zone). A record walked from / holds them.
func systemPath(p string) bool {
	for _, root := range []string{"/zookeeper", "/keeper"} {
		if p == root || strings.HasPrefix(p, root+"/") {
			return true
		}
	}
	return false
}

func aclSchemes(acls []ACL) string {
	var s []string
	for _, a := range acls {
		s = append(s, a.Scheme)
	}
	return "[" + strings.Join(s, " ") + "]"
}

// ensureParents creates the ancestors of root, empty, so that a restore under a deep root
// works on a blank ensemble.
func ensureParents(conn *zk.Conn, root string, dryRun bool) error {
	if dryRun || root == "/" {
		return nil
	}
	parts := strings.Split(strings.Trim(root, "/"), "/")
	for i := 1; i < len(parts); i++ {
		p := "/" + strings.Join(parts[:i], "/")
		if _, err := conn.Create(p, nil, 0, zk.WorldACL(zk.PermAll)); err != nil && !errors.Is(err, zk.ErrNodeExists) {
			return fmt.Errorf("create parent %s: %w", p, err)
		}
	}
	return nil
}

// restoreRoot is the node a restore writes under, "/" for the whole tree.
func restoreRoot(root string) string {
	if root = strings.TrimSuffix(root, "/"); root == "" {
		return "/"
	}
	return root
}

// refusal is why a restore without --replace must not run: the root already has children, as
// on a live ensemble, whose replicas' metadata is better rebuilt than overwritten.
func refusal(conn *zk.Conn, root string) error {
	ok, st, err := conn.Exists(root)
	if err != nil {
		return fmt.Errorf("check %s before restore: %w", root, err)
	}
	if ok && st.NumChildren > 0 {
		return fmt.Errorf("restore zookeeper under %s: %w (%d children), nothing was restored; use --replace to overwrite their data, or restore-replica to rebuild one replica",
			root, ErrNodesExist, st.NumChildren)
	}
	return nil
}
