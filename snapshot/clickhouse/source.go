package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"
	"golang.org/x/sync/errgroup"

	"github.com/tracevault/tracevault/snapshot"
	"github.com/tracevault/tracevault/snapshot/clickhouse/native"
	"github.com/tracevault/tracevault/snapshot/progress"
	"github.com/tracevault/tracevault/snapshot/store"
)

// Source backs up the partitions of a ClickHouse cluster. In logical mode each partition is
// SELECT ... FORMAT Native over a replica's HTTP interface; in freeze mode it is the partition's
// frozen part files, read from a replica whose data path is on this host. Either way it is
// streamed into the repository.
type Source struct {
	Native  []string // native host:port of every replica
	HTTP    []string // HTTP host:port, same order; freeze mode may leave it empty
	Conn    ConnOptions
	Filter  Filter
	Cluster string
	Mode    string // ModeLogical (default) or ModeFreeze
	// DataPath is where the replica's data path is mounted on this host in freeze mode, when
	// that differs from the path the server reports; empty uses the server's paths as they are.
	DataPath string
	// ZooKeeper, when set, adds the registrations to the recorded group map.
	ZooKeeper func(ctx context.Context) (*zk.Conn, error)
	// Parallel is how many partitions of a table are exported at once (default 2). Each holds
	// a query stream and the repository's upload buffers (about block_size x concurrency for
	// Azure), so memory grows with it.
	Parallel int
	// SingleReplica exports all of a replicated table's partitions from the one replica least
	// behind ([clickhouse] spread_exports = false). By default, in logical mode, each partition
	// goes to the least loaded of the replicas fit to give it (see assignExports).
	SingleReplica bool
	Log           *slog.Logger

	local *LocalFS
	sums  *contentSums
	// load is what this backup gave each replica to export so far, by address, so that the
	// tables' partitions spread over the replicas together rather than table by table.
	load map[string]*exportLoad
}

func (s *Source) Name() string { return "clickhouse" }

// Workers is how many partitions move at once for [clickhouse] parallel = n, the export's and
// the restore's bound: 2 when unset, which keeps two cores busy between a server and
// tracevault; more mostly costs memory, each partition holding its own stream and buffers.
func Workers(n int) int {
	if n < 1 {
		return 2
	}
	return n
}

// Backup exports every selected table. A replica that is down is skipped when another one has
// the table; the source replica of each partition is recorded.
func (s *Source) Backup(ctx context.Context, w *snapshot.Writer) (any, error) {
	if s.Log == nil {
		s.Log = slog.Default()
	}
	switch s.Mode {
	case "", ModeLogical:
		if len(s.HTTP) == 0 {
			return nil, errors.New("clickhouse logical mode reads through the HTTP interface: set [clickhouse] http_addresses, or mode = \"freeze\" when tracevault runs beside the servers")
		}
	case ModeFreeze: // its LocalFS, below, needs the servers
	default:
		return nil, fmt.Errorf("clickhouse mode %q is unknown: set [clickhouse] mode to \"logical\" or \"freeze\"", s.Mode)
	}
	s.sums = &contentSums{repo: w.Repository()}
	s.load = map[string]*exportLoad{}
	servers, httpOf, err := Connect(ctx, s.Native, s.HTTP, s.Conn, s.Log)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, srv := range servers {
			srv.Close()
		}
	}()
	if s.Mode == ModeFreeze {
		s.local = NewLocalFS(s.DataPath, servers)
	}
	var zkConn *zk.Conn
	if s.ZooKeeper != nil {
		if zkConn, err = s.ZooKeeper(ctx); err != nil {
			s.Log.Warn("zookeeper unavailable; the group map will lack registrations", "err", err)
		} else {
			defer zkConn.Close()
		}
	}
	view := Observe(ctx, servers, s.Native, zkConn)
	sec := &Section{Cluster: s.Cluster, Capabilities: servers[0].Caps, View: view}
	for _, r := range view.Replicas {
		sec.Replicas = append(sec.Replicas, ReplicaIndex{Native: r.Addr, HTTP: httpOf[r.Addr], Macros: r.Macros})
	}
	tables, err := Discover(ctx, servers[0], s.Filter)
	if err != nil {
		return nil, err
	}
	if sec.Databases, err = databaseRecords(ctx, servers[0], tables); err != nil {
		return nil, err
	}
	if rep := progress.From(ctx); rep != progress.Nop {
		if err := s.plan(ctx, servers, tables, rep); err != nil {
			s.Log.Warn("could not size the backup for its progress; the total leaves clickhouse out", "err", err)
		}
	}
	// The other sources of the set take their cuts as the first table is listed.
	if err := w.AwaitCut(ctx); err != nil {
		return sec, err
	}
	cut := newSourceCut(time.Now())
	for _, t := range tables {
		rec := TableRecord{Table: t}
		if t.HasData() {
			if err := s.exportTable(ctx, w, &rec, servers, view, httpOf); err != nil {
				return sec, err
			}
			cut.add(rec)
		} else if t.KeepsRowsOutsideParts() {
			rec.RowsNotKept = "engine " + t.Engine + " keeps its rows outside MergeTree parts, which are all a backup exports: only its definition is in the snapshot"
			s.Log.Warn("a table's rows are not backed up, only its definition", "table", t.FullName(), "engine", t.Engine,
				"fix", "recreate it with a MergeTree engine; for golang-migrate's schema_migrations, migrate with x-migrations-table-engine=MergeTree, as Langfuse does")
		}
		sec.Tables = append(sec.Tables, rec)
	}
	w.RecordCut(cut.time(), cut.position())
	return sec, nil
}

// sourceReplicas picks where to read a table from: for a replicated table the healthy replicas,
// least delay and queue first; for a local table every replica that has it, since each holds
// different rows.
func sourceReplicas(t Table, servers []*Server, view *View) []*Server {
	if !t.Replicated() {
		return servers
	}
	type cand struct {
		srv   *Server
		delay uint64
		queue uint32
	}
	var cands []cand
	for _, s := range servers {
		for _, r := range view.Replicas {
			if r.Addr != s.Addr {
				continue
			}
			for _, rt := range r.Tables {
				if rt.FullName() == t.FullName() && rt.Healthy() {
					cands = append(cands, cand{s, rt.AbsoluteDelay, rt.QueueSize})
				}
			}
		}
	}
	sort.SliceStable(cands, func(i, j int) bool {
		if cands[i].delay != cands[j].delay {
			return cands[i].delay < cands[j].delay
		}
		return cands[i].queue < cands[j].queue
	})
	out := make([]*Server, len(cands))
	for i, c := range cands {
		out[i] = c.srv
	}
	return out
}

// exportReplicas narrows sourceReplicas to the ones this backup reads: the best one for a
// replicated table, and in freeze mode only replicas whose data path is on this host. Where
// choosing the replica measured its delay, that measurement comes with it (it is the table's
// cut); elsewhere the delay is left unmeasured (zero at). In logical mode a replicated table's
// pick also carries the peers that may export some of its partitions, unless SingleReplica.
func (s *Source) exportReplicas(ctx context.Context, t Table, servers []*Server, view *View) ([]exportPick, error) {
	srcs := sourceReplicas(t, servers, view)
	if len(srcs) == 0 {
		return nil, fmt.Errorf("no healthy replica has %s (all readonly, expired or down); see 'tracevault check'", t.FullName())
	}
	unmeasured := func(srvs []*Server) []exportPick {
		out := make([]exportPick, len(srvs))
		for i, srv := range srvs {
			out[i].srv = srv
		}
		return out
	}
	if s.Mode != ModeFreeze {
		if t.Replicated() {
			best, peers, err := leastDelayed(ctx, srcs, t)
			if s.SingleReplica {
				peers = nil
			}
			return []exportPick{{best, peers}}, err
		}
		return unmeasured(srcs), nil
	}
	var local []*Server
	var errs []error
	for _, srv := range srcs {
		root, err := s.local.root(ctx, srv)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s.local.removeStale(root, srv, s.Log)
		local = append(local, srv)
		if t.Replicated() {
			return unmeasured(local), nil
		}
	}
	if len(errs) > 0 {
		// A local table's rows live on each replica; freezing some and not others would lose rows.
		return nil, fmt.Errorf("freeze %s: %w", t.FullName(), errors.Join(errs...))
	}
	return unmeasured(local), nil
}

func (s *Source) exportTable(ctx context.Context, w *snapshot.Writer, rec *TableRecord, servers []*Server, view *View, httpOf map[string]string) error {
	picks, err := s.exportReplicas(ctx, rec.Table, servers, view)
	if err != nil {
		return err
	}
	for _, pick := range picks {
		peers := s.listPeers(ctx, rec.Table, pick.peers)
		colList, err := columnList(ctx, pick.srv, rec.Database, rec.Name)
		if err != nil {
			return err
		}
		if len(colList) == 0 {
			continue // no such table here: a local table need not exist on every replica
		}
		cols := columnStrings(colList)
		rec.Columns = cols
		// Measured before the listing below, so what the listing holds, and the exports
		// below hold at least, reaches up to the cut.
		if pick.at.IsZero() {
			if pick.measuredDelay, err = tableCut(ctx, rec.Table, pick.srv); err != nil {
				return err
			}
		}
		if cut := pick.cut(); rec.Cut.IsZero() || cut.Before(rec.Cut) {
			rec.Cut, rec.CutReplicaDelay = cut, pick.seconds
		}
		parts, err := Partitions(ctx, pick.srv, rec.Database, rec.Name)
		if err != nil {
			return err
		}
		rec.VersionColumn = versionColumn(rec.Create)
		// Each partition's replica: the pick's, or a peer fit to give the same partition.
		from := s.partitionSources(ctx, rec.Table, pick, peers(), cols, parts)
		checked := CheckedStream
		if unwalkable := unwalkableColumn(colList); unwalkable != "" && len(parts) > 0 {
			checked = CheckedQueryLog
			if s.Mode != ModeFreeze || slices.ContainsFunc(parts, func(p Partition) bool { return len(p.Patches) > 0 }) {
				s.Log.Info("a column's type cannot be walked in the Native stream; the server's query log checks each export instead",
					"table", rec.FullName(), "column", unwalkable)
			}
		}
		// Set once a server refused an export with the row hash: the rest of the table's
		// partitions go without.
		var unhashed atomic.Bool
		// Several partitions at once, in a bounded pool: one stream keeps about one core busy
		// between the server and tracevault, and each holds its own buffers (see Parallel).
		recs := make([]PartitionRecord, len(parts))
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(Workers(s.Parallel))
		for i, p := range parts {
			srv := from[i]
			h := &HTTP{Addr: httpOf[srv.Addr], User: s.Conn.User, Password: s.Conn.Password, StallTimeout: s.Conn.StallTimeout}
			g.Go(func() error {
				ctx := gctx
				start := time.Now()
				format, src := FormatNative, io.ReadCloser(nil)
				var fz *freezeReader
				var stream *lazyNative
				// A partition with patch parts is exported logically in freeze mode too: a freeze
				// cannot carry them (see errPatchParts).
				logical := s.Mode != ModeFreeze || len(p.Patches) > 0
				open := func() {
					fz, stream = nil, nil
					if !logical {
						root, _ := s.local.root(ctx, srv) // exportReplicas kept only local replicas
						db, table, id := rec.Database, rec.Name, p.ID
						fz = &freezeReader{freeze: func() (*frozen, error) { return freezeUnpatched(ctx, srv, root, db, table, id) }}
						format, src = FormatPartsTar, fz
						return
					}
					format = FormatNative
					from := fmt.Sprintf(" FROM %s.%s WHERE %s FORMAT Native", QuoteIdent(rec.Database), QuoteIdent(rec.Name), InPartition(p))
					sql, opts := "SELECT *"+from, []native.Option{native.Newest(rec.VersionColumn)}
					stream = &lazyNative{atEnd: s.exportedAll(ctx, srv, rec.Table, p), open: func() (rowStream, error) {
						if h.Addr == "" { // freeze mode, where http_addresses may be unset
							return nil, fmt.Errorf("the partition has patch parts (lightweight updates), which a freeze leaves out, so freeze mode exports it logically, " +
								"through the HTTP interface: set [clickhouse] http_addresses")
						}
						if checked == CheckedQueryLog {
							return h.QueryLogged(ctx, sql)
						}
						// Where the stream is walked and the server hashes tuples, the content
						// checksum comes from this read: one read of the partition, not two.
						if kind, _ := srv.Caps.ContentKind(); kind == ContentTuple && !unhashed.Load() {
							ns, err := h.QueryNative(ctx, "SELECT *, "+rowHash(kind)+" AS "+RowHashColumn+from, append(opts, native.RowHash(RowHashColumn))...)
							var refused *statusError
							if !errors.As(err, &refused) {
								return ns, err
							}
							// A checksum must never cost the backup: a column type the server
							// cannot hash (none known on 26.x) fails the query, not the export.
							// The table's partitions are exported plain and summed apart.
							if unhashed.CompareAndSwap(false, true) {
								s.Log.Warn("the server refused to hash this table's rows in its export; exporting them without, and summing each partition with a query of its own",
									"table", rec.FullName(), "replica", srv.Addr, "error", err)
							}
						}
						return h.QueryNative(ctx, sql, opts...)
					}}
					src = stream
				}
				meta := store.ManifestObject{Kind: "partition", Database: rec.Database, Table: rec.Name, Partition: p.ID, Replica: srv.Addr, Rows: int64(p.Rows)}
				fingerprint := Fingerprint(rec.Table, cols, p, srv.Addr)
				if !logical {
					fingerprint += "/" + FormatPartsTar // the same parts as a native object are not the same object
				}
				var obj store.ManifestObject
				var err, closeErr error
				refrozen := 0
				for attempt := 1; ; attempt++ {
					open()
					obj, err = w.Put(ctx, meta, fingerprint, src)
					closeErr = src.Close()
					if !logical && errors.Is(err, errMergedWhileFrozen) && refrozen < freezeAgain {
						refrozen++
						attempt--
						continue
					}
					if !logical && errors.Is(err, errPatchParts) {
						// A lightweight update came between the listing and the freeze: the
						// partition is exported logically after all. The listing does not name
						// the rows the object holds, so no later backup may reuse it by that
						// listing: no fingerprint.
						s.Log.Info("a partition was updated in place while it was frozen; exporting it logically", "table", rec.FullName(), "partition", p.ID, "replica", srv.Addr)
						logical, fingerprint = true, ""
						attempt--
						continue
					}
					if !s.exportAgain(ctx, err, attempt, rec.Table, p.ID, srv.Addr) {
						break
					}
				}
				if err != nil {
					return fmt.Errorf("export %s partition %s from %s: %w", rec.FullName(), p.ID, srv.Addr, err)
				}
				if closeErr != nil && fz != nil {
					return fmt.Errorf("remove the shadow directory of %s partition %s on %s: %w", rec.FullName(), p.ID, srv.Addr, closeErr)
				}
				if stream != nil && !obj.Reused {
					// Inserts and merges go on between the listing and the SELECT: record the rows
					// the object holds, counted in its stream, which restore checks before it
					// swaps the partition in.
					p.Rows = uint64(stream.Rows())
				} else if stream != nil {
					// A reused object's listing (parts and rows) equals the one it was stored
					// under: it holds what SELECT returns of these parts, without the rows a
					// lightweight delete masked.
					p.Rows = p.visible
				}
				how := ""
				if stream != nil && !obj.Reused {
					how = checked
				}
				if fz != nil && fz.f != nil {
					// A merge or insert between listing and freezing changes the parts; record what
					// the object holds, which restore's row check compares against.
					p.Parts, p.Rows = fz.f.parts, fz.f.rows
				}
				var exported *ContentSum
				if stream != nil {
					exported = stream.Content()
				}
				content, why := s.sums.of(ctx, srv, rec, p, obj, stream != nil, exported)
				if why != "" {
					s.Log.Warn("no content checksum recorded for a partition; a drill compares its rows only", "table", rec.FullName(), "partition", p.ID, "why", why)
				}
				pr := PartitionRecord{Partition: p, Replica: srv.Addr, Object: obj.ID, SHA256: obj.SHA256, Format: format, Checked: how, Content: content}
				if !obj.Reused {
					// A reused object holds the parts as listed: its cut is the table's.
					pr.Exported = start.UTC()
				}
				if stream != nil {
					pr.Newest, pr.newestTime = stream.Newest()
				}
				recs[i] = pr
				s.Log.Debug("partition", "table", rec.FullName(), "partition", p.ID, "replica", srv.Addr, "rows", p.Rows, "reused", obj.Reused, "seconds", time.Since(start).Seconds())
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return err
		}
		rec.Partitions = append(rec.Partitions, recs...)
	}
	return nil
}

// databaseRecords reads the UUID and engine of the tables' databases, on servers whose
// system.databases has a uuid column (20.x+); a database without one (Ordinary) is left out.
func databaseRecords(ctx context.Context, srv *Server, tables []Table) ([]DatabaseRecord, error) {
	if !srv.Caps.DatabaseUUIDs {
		return nil, nil
	}
	want := map[string]bool{}
	for _, t := range tables {
		want[t.Database] = true
	}
	all, err := Databases(ctx, srv)
	if err != nil {
		return nil, err
	}
	var out []DatabaseRecord
	for _, d := range all {
		if want[d.Name] && d.UUID != "" {
			out = append(out, d)
		}
	}
	return out, nil
}

const zeroUUID = "00000000-0000-0000-0000-000000000000"

// unwalkableColumn names the first column, as "name type", whose type the Native scanner
// cannot walk, or "" when it can walk them all.
func unwalkableColumn(cols []column) string {
	for _, c := range cols {
		if native.Walkable(c.typ) != nil {
			return c.name + " " + c.typ
		}
	}
	return ""
}

// rowStream is an export's result that knows, once read to its end, how many rows it held.
type rowStream interface {
	io.ReadCloser
	Rows() int64
}

// exportAgain says whether an export that failed with err on its attempt'th run runs again,
// and waits before it (see again). Only a broken connection is tried again: a query the server
// failed or a repository that refused the object would fail the same way, and the repository
// retries on its own.
func (s *Source) exportAgain(ctx context.Context, err error, attempt int, t Table, partition, replica string) bool {
	return again(ctx, s.Log, err, attempt, "a partition's export broke off; exporting it again",
		"table", t.FullName(), "partition", partition, "replica", replica)
}

// lazyNative opens its stream on the first Read, so a partition whose object is reused is never
// queried at all.
type lazyNative struct {
	open func() (rowStream, error)
	// atEnd judges the rows the stream held when it ends: an error in place of the end keeps
	// the object from being stored; matched false stores it without its listing's fingerprint
	// (MatchesFingerprint).
	atEnd   func(rows int64) (matched bool, err error)
	ns      rowStream
	err     error
	matched bool
	ended   bool // read to io.EOF, and atEnd found nothing wrong
}

// MatchesFingerprint says whether the stream was read to its end and held what its partition's
// listing shows, so that a later backup with the same listing may reuse the object
// (store.FingerprintCheck). Any other object is stored without the fingerprint and never
// reused: one that held something else, and one whose stream never reached its checked end,
// which a writer should not have stored at all (see store.UploadSource).
func (l *lazyNative) MatchesFingerprint() bool { return l.matched }

func (l *lazyNative) Read(p []byte) (int, error) {
	if l.ns == nil && l.err == nil {
		// Kept only when it opened: a nil *NativeStream in the interface would not be nil.
		if ns, err := l.open(); err != nil {
			l.err = err
		} else {
			l.ns = ns
		}
	}
	if l.err != nil {
		return 0, l.err
	}
	n, err := l.ns.Read(p)
	if err == io.EOF {
		matched, bad := l.atEnd(l.ns.Rows())
		if bad != nil {
			l.err = bad
			return n, bad
		}
		l.matched, l.ended = matched, true
	}
	return n, err
}

// Content is the checksum the export summed from its own rows, once read to its end: where its
// SELECT appended a ContentTuple row hash (native.RowHash). It is of exactly the rows the object
// holds, whatever changed on the server meanwhile. Nil otherwise.
func (l *lazyNative) Content() *ContentSum {
	h, ok := l.ns.(interface{ RowHashSum() (uint64, bool) })
	if !l.ended || !ok {
		return nil
	}
	sum, ok := h.RowHashSum()
	if !ok {
		return nil
	}
	return &ContentSum{Rows: uint64(l.ns.Rows()), Sum: sum, Kind: ContentTuple}
}

// exportedAll returns the check of a logical export's end: a server or a proxy can end its
// answer early, and cleanly, with whole blocks. The Native format has no end marker, so only
// the rows tell: where the partition's parts and patch parts are still the ones listed, the
// export read exactly them and must hold the rows they show. Parts never become active again
// once merged away, so the same sets after the export mean nothing changed in between; where
// they differ the export read other parts and the object holds what it read. Such an object
// matches its listing's fingerprint only by chance, so it is stored without it (matched false):
// a listing the server showed while it was dying may come back after its restart, and a reused
// object is trusted to hold its listing's rows. An empty answer for a partition whose parts
// still show rows is an answer ended early too, whatever else changed.
func (s *Source) exportedAll(ctx context.Context, srv *Server, t Table, p Partition) func(int64) (bool, error) {
	return func(rows int64) (bool, error) {
		if rows == int64(p.visible) {
			return true, nil
		}
		parts, patches, err := partitionParts(ctx, srv, t.Database, t.Name, p.ID)
		if err != nil {
			return false, fmt.Errorf("check the rows exported of %s partition %s: %w", t.FullName(), p.ID, err)
		}
		endedEarly := func(shown uint64) error {
			return fmt.Errorf("the export of %s partition %s held %d rows where its parts show %d: "+
				"the server ended its answer early (or a row policy hides rows from this user): %w", t.FullName(), p.ID, rows, shown, errBrokenOff)
		}
		if slices.Equal(parts, p.Parts) && slices.Equal(patches, p.Patches) {
			return false, endedEarly(p.visible)
		}
		if rows == 0 && len(parts) > 0 {
			now := Partition{ID: p.ID, Parts: parts, Patches: patches}
			if err := countVisible(ctx, srv, t.Database, t.Name, &now); err != nil {
				return false, fmt.Errorf("check the rows exported of %s partition %s: %w", t.FullName(), p.ID, err)
			}
			if now.visible > 0 {
				return false, endedEarly(now.visible)
			}
		}
		return false, nil
	}
}

// Newest is the newest version the stream held, once read to its end (see native.Newest).
func (l *lazyNative) Newest() (string, time.Time) {
	if n, ok := l.ns.(interface{ Newest() (string, time.Time) }); ok {
		return n.Newest()
	}
	return "", time.Time{}
}

// Rows is what the stream held, once read to its end; snapshot.Writer records it.
func (l *lazyNative) Rows() int64 {
	if l.ns == nil {
		return 0
	}
	return l.ns.Rows()
}

func (l *lazyNative) Close() error {
	if l.ns != nil {
		return l.ns.Close()
	}
	return nil
}
