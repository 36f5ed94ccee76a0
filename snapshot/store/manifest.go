package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/tracevault/tracevault/snapshot/progress"
)

// Snapshot statuses. A snapshot is complete only when every component succeeded; anything
// else is partial, with the error recorded, and never shown or restored as complete.
const (
	StatusComplete = "complete"
	StatusPartial  = "partial"
)

// Manifest is the one document that says what a snapshot holds.
type Manifest struct {
	ID     string    `json:"id"`
	Start  time.Time `json:"start"`
	End    time.Time `json:"end"`
	Status string    `json:"status"`
	Error  string    `json:"error,omitempty"`
	Host   string    `json:"host"`
	Tags   []string  `json:"tags,omitempty"`
	// Components are the sources that ran, each with its own times and outcome.
	Components []Component `json:"components"`
	// Scope is what the set was asked to hold (scope.go); nil in manifests from before it was
	// recorded.
	Scope *Scope `json:"scope,omitempty"`
	// Cut is the moment the set stands for (cut.go); nil in a partial set and in manifests
	// from before it was recorded.
	Cut *Cut `json:"cut,omitempty"`
	// Sections hold each source's own record (schema, partitions, LSN, zxid, group map).
	Sections map[string]json.RawMessage `json:"sections,omitempty"`
	Objects  []ManifestObject           `json:"objects"`
	// Auth authenticates the manifest in an encrypted repository (auth.go).
	Auth []ManifestMAC `json:"auth,omitempty"`
}

// Component is one source's part of a snapshot set.
type Component struct {
	Source string    `json:"source"`
	Start  time.Time `json:"start"`
	End    time.Time `json:"end"`
	Status string    `json:"status"`
	Error  string    `json:"error,omitempty"`
}

// ManifestObject is an object and what it contains.
type ManifestObject struct {
	ObjectRef
	Source    string `json:"source"`
	Kind      string `json:"kind,omitempty"` // e.g. "partition", "table", "schema", "zk-record"
	Database  string `json:"database,omitempty"`
	Table     string `json:"table,omitempty"`
	Partition string `json:"partition,omitempty"`
	Replica   string `json:"replica,omitempty"`
	Rows      int64  `json:"rows,omitempty"`
	// Reused marks an object an earlier snapshot uploaded: the incremental saving.
	Reused bool `json:"reused,omitempty"`
}

// Unit is the object as progress shows and plans it: its source, table and partition, and what
// reading it back moves.
func (o ManifestObject) Unit() progress.Unit {
	return progress.Unit{Source: o.Source, Table: strings.Trim(o.Database+"."+o.Table, "."), Partition: o.Partition,
		Object: o.ID, Bytes: o.RawSize, Rows: o.Rows}
}

// Totals sums a manifest's objects.
type Totals struct {
	Objects  int   `json:"objects"`
	Reused   int   `json:"reused"`
	Bytes    int64 `json:"bytes"`     // stored size of everything referenced
	NewBytes int64 `json:"new_bytes"` // stored size uploaded by this snapshot
	RawBytes int64 `json:"raw_bytes"`
}

// Totals computes the manifest's sizes.
func (m *Manifest) Totals() Totals {
	var t Totals
	for _, o := range m.Objects {
		t.Objects++
		t.Bytes += o.Size
		t.RawBytes += o.RawSize
		if o.Reused {
			t.Reused++
		} else {
			t.NewBytes += o.Size
		}
	}
	return t
}

// Sources lists the components' sources.
func (m *Manifest) Sources() []string {
	var out []string
	for _, c := range m.Components {
		out = append(out, c.Source)
	}
	return out
}

// NewManifest starts a manifest with a time-sortable id.
func NewManifest(tags []string) *Manifest {
	now := time.Now().UTC()
	host, _ := os.Hostname()
	return &Manifest{ID: snapshotID(now), Start: now, Host: host, Tags: tags, Sections: map[string]json.RawMessage{}}
}

// snapshotID is the time to the second, then the millisecond in three hex digits and three random
// ones: snapshots taken in the same second still sort in the order they were taken, which
// "latest" and an incremental backup's base rely on (a random suffix alone ordered them by chance).
func snapshotID(t time.Time) string {
	return t.Format("20060102T150405Z") + "-" + fmt.Sprintf("%03x", t.Nanosecond()/int(time.Millisecond)) + newID()[:3]
}

func manifestName(id string) string { return "snapshots/" + id + ".json" }

// maxManifest bounds what is read of one manifest, stored and decoded: a manifest lists objects,
// not data, and a crafted one must not exhaust memory.
const maxManifest = 64 << 20

// validate checks everything a path or blob name is later built from, against the form the
// writer produces, and that the manifest is the one its file name says.
func (m *Manifest) validate(name string) error {
	if err := ValidSnapshotID(m.ID); err != nil {
		return err
	}
	if name != manifestName(m.ID) {
		return fmt.Errorf("it holds snapshot %s, whose manifest is %s", m.ID, manifestName(m.ID))
	}
	if m.Status != StatusComplete && m.Status != StatusPartial {
		return fmt.Errorf("status %q is neither %s nor %s", m.Status, StatusComplete, StatusPartial)
	}
	for i, o := range m.Objects {
		if err := ValidObjectID(o.ID); err != nil {
			return fmt.Errorf("objects[%d]: %w", i, err)
		}
		if err := o.checkForm(); err != nil {
			return fmt.Errorf("objects[%d] (%s): %w", i, o.ID, err)
		}
	}
	return nil
}

// parseManifest decodes a manifest's plaintext and validates it; name is its file.
func parseManifest(name string, plain io.Reader) (*Manifest, error) {
	var m Manifest
	if err := json.NewDecoder(io.LimitReader(plain, maxManifest)).Decode(&m); err != nil {
		return nil, fmt.Errorf("not a manifest: %w", err)
	}
	if err := m.validate(name); err != nil {
		return nil, err
	}
	return &m, nil
}

// CommitManifest writes the manifest: the moment the snapshot comes into existence. Its objects
// must all be stored already.
func (r *Repository) CommitManifest(ctx context.Context, m *Manifest) error {
	if m.End.IsZero() {
		m.End = time.Now().UTC()
	}
	// The checks a reader applies, applied before writing, so that tracevault never commits a
	// manifest it would then refuse to act on.
	if err := m.validate(manifestName(m.ID)); err != nil {
		return fmt.Errorf("commit snapshot %s: %w", m.ID, err)
	}
	if err := r.sign(m); err != nil {
		return err
	}
	if err := r.PutJSON(ctx, manifestName(m.ID), m); err != nil {
		// The answer to a write can be lost after the storage made it (a connection reset, a
		// request delivered after the client gave up): calling the snapshot failed would then
		// contradict the repository, which lists it. The id is this run's own and a put is
		// atomic, so a manifest under it is this one, whole.
		if _, serr := r.b.Stat(ctx, manifestName(m.ID)); serr == nil {
			r.log.Warn("the answer to committing a snapshot was lost, but its manifest is stored: the snapshot exists", "snapshot", m.ID, "err", err)
			return nil
		}
		return fmt.Errorf("commit snapshot %s: %w", m.ID, err)
	}
	return nil
}

// DamagedManifest is a file under snapshots/ that is not a valid, authentic manifest: nothing is
// ever done with it but naming it.
type DamagedManifest struct {
	Name  string `json:"name"`
	Error string `json:"error"`
}

// Fix says what to do about a damaged manifest.
func (d DamagedManifest) Fix() string {
	return fmt.Sprintf("the snapshot it held cannot be used; if [storage.encryption] holds the right keys, look at it, then remove it with 'tracevault delete --damaged %s'", path.Base(d.Name))
}

// Catalog is every manifest in the repository: the valid ones, oldest first, and the damaged ones.
type Catalog struct {
	Snapshots []Manifest        `json:"snapshots"`
	Damaged   []DamagedManifest `json:"damaged,omitempty"`
}

// Catalog reads every manifest. One that cannot be decoded, fails validation or (encrypted)
// authentication is listed as damaged and skipped, so one bad file never hides the others; only
// a failure to reach the storage is an error. It lists snapshots/ and reads only the manifests
// that are new or changed since this Repository last read them (manifest_cache.go); the
// manifests it returns are the caller's own copies.
func (r *Repository) Catalog(ctx context.Context) (Catalog, error) {
	return r.catalogCopy(ctx, false)
}

// catalogCopy is Catalog, reading every manifest afresh when fresh.
func (r *Repository) catalogCopy(ctx context.Context, fresh bool) (Catalog, error) {
	shared, damaged, err := r.catalog(ctx, fresh)
	if err != nil {
		return Catalog{}, err
	}
	return Catalog{Snapshots: cloneAll(shared), Damaged: damaged}, nil
}

var errTooLarge = fmt.Errorf("larger than %d MiB, which no manifest is", maxManifest>>20)

// readStored reads a manifest's stored bytes whole, so that a transport error (which fails the
// caller) is told apart from damage (which only skips the manifest).
func (r *Repository) readStored(ctx context.Context, name string) ([]byte, error) {
	rc, err := r.b.Get(ctx, name, 0, -1)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	raw, err := io.ReadAll(io.LimitReader(rc, maxManifest+1))
	if err == nil && len(raw) > maxManifest {
		return nil, errTooLarge
	}
	return raw, err
}

func (r *Repository) decodeManifest(name string, raw []byte) (*Manifest, error) {
	plain, err := r.codec.decode(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	defer plain.Close()
	m, err := parseManifest(name, plain)
	if err != nil {
		return nil, err
	}
	if err := r.authenticate(m); err != nil {
		return nil, err
	}
	return m, nil
}

// Snapshots lists every valid manifest, oldest first; damaged ones are logged by name (Catalog
// returns them).
func (r *Repository) Snapshots(ctx context.Context) ([]Manifest, error) {
	c, err := r.Catalog(ctx)
	if err != nil {
		return nil, err
	}
	r.logDamaged(c.Damaged)
	return c.Snapshots, nil
}

func (r *Repository) logDamaged(damaged []DamagedManifest) {
	for _, d := range damaged {
		r.log.Warn("skipping a damaged manifest", "manifest", d.Name, "err", d.Error, "fix", d.Fix())
	}
}

// ErrAmbiguous means an id prefix matches more than one snapshot.
var ErrAmbiguous = errors.New("ambiguous snapshot id")

// Snapshot finds a snapshot by id or unique id prefix. "latest" is the newest complete full set
// (every source SetConfigured named, held whole; without it, the newest complete set);
// "latest:SRC[,SRC]" the newest complete set holding those sources whole; "latest:any" the
// newest complete set of any scope (scope.go).
func (r *Repository) Snapshot(ctx context.Context, id string) (*Manifest, error) {
	return r.snapshot(ctx, id, false)
}

// snapshot is Snapshot, reading the manifests it looks at afresh when fresh.
func (r *Repository) snapshot(ctx context.Context, id string, fresh bool) (*Manifest, error) {
	if id == "" {
		return nil, fmt.Errorf("snapshot \"\": %w; give an id, a unique prefix of one, or latest", ErrNotFound)
	}
	sel, latest, err := r.parseLatest(id)
	if err != nil {
		return nil, err
	}
	if m, err := r.snapshotByName(ctx, id, sel, latest, fresh); err != nil || m != nil {
		return m, err
	}
	// Not found, ambiguous or damaged: the whole catalog says which.
	c, err := r.catalogCopy(ctx, fresh)
	if err != nil {
		return nil, err
	}
	r.logDamaged(c.Damaged)
	all := c.Snapshots
	var found []Manifest
	for i := len(all) - 1; i >= 0; i-- {
		m := all[i]
		if latest && sel.matches(&m) {
			return &m, nil
		}
		if !latest && strings.HasPrefix(m.ID, id) {
			found = append(found, m)
		}
	}
	damaged := ""
	if len(c.Damaged) > 0 {
		damaged = fmt.Sprintf(" (%d damaged manifests were skipped; 'tracevault verify --all' names them)", len(c.Damaged))
	}
	switch {
	case latest:
		return nil, errNoLatest(sel, all, r.b, damaged)
	case len(found) == 0:
		return nil, fmt.Errorf("snapshot %q: %w; 'tracevault list' shows the snapshots%s", id, ErrNotFound, damaged)
	case len(found) == 1:
		return &found[0], nil
	default:
		// Name the matches (newest first, at most ten) so the operator can pick one.
		ids := make([]string, 0, min(len(found), 10))
		for _, m := range found[:min(len(found), 10)] {
			ids = append(ids, m.ID)
		}
		more := ""
		if len(found) > len(ids) {
			more = fmt.Sprintf(" and %d more", len(found)-len(ids))
		}
		return nil, fmt.Errorf("snapshot %q: %w (%d match: %s%s); give more of the id", id, ErrAmbiguous, len(found), strings.Join(ids, ", "), more)
	}
}

// snapshotByName finds what Snapshot would, reading only the manifests whose file names can
// hold it (for latest, the newest ones back to the first that sel matches), so that a backup's
// look at the latest snapshot does not read the whole history. It returns nil, nil when the
// answer is not found that way: none, several or only damaged ones match. Manifests are read
// through the cache Catalog keeps (unless fresh), and the one returned is the caller's copy.
func (r *Repository) snapshotByName(ctx context.Context, id string, sel latestSelector, latest, fresh bool) (*Manifest, error) {
	var listed []ObjectInfo
	if err := r.b.List(ctx, "snapshots/", func(o ObjectInfo) error {
		base, ok := strings.CutSuffix(strings.TrimPrefix(o.Name, "snapshots/"), ".json")
		if ok && (latest || strings.HasPrefix(base, id)) {
			listed = append(listed, o)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	if !latest && len(listed) != 1 {
		return nil, nil
	}
	// Manifest ids sort by time, as Catalog orders them.
	sort.Slice(listed, func(i, j int) bool { return listed[i].Name > listed[j].Name })
	for _, o := range listed {
		e, err := r.readManifest(ctx, o, fresh)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if e.m == nil {
			continue // damaged: Catalog reports it
		}
		if !latest || sel.matches(e.m) {
			m := e.m.clone()
			return &m, nil
		}
	}
	return nil, nil
}

// DeleteSnapshot forgets a snapshot; its objects are removed by the next prune if nothing else
// references them.
func (r *Repository) DeleteSnapshot(ctx context.Context, id string) error {
	if err := ValidSnapshotID(id); err != nil {
		return fmt.Errorf("delete snapshot: %w", err)
	}
	return r.b.Delete(ctx, manifestName(id))
}

// DeleteDamaged removes a damaged manifest, named as Catalog reports it (with or without
// "snapshots/"). Only a name the catalog lists as damaged is removed: a readable snapshot is
// deleted by id, and nothing else is ever deleted this way.
func (r *Repository) DeleteDamaged(ctx context.Context, name string) error {
	c, err := r.Catalog(ctx)
	if err != nil {
		return err
	}
	for _, d := range c.Damaged {
		if d.Name == name || d.Name == "snapshots/"+name {
			return r.b.Delete(ctx, d.Name)
		}
	}
	return fmt.Errorf("delete damaged manifest %q: %w: no damaged manifest has that name ('tracevault verify --all' names them; a readable snapshot is deleted by its id)", name, ErrNotFound)
}

// PutJSON and GetJSON store small documents (run history) through the codec.
func (r *Repository) PutJSON(ctx context.Context, name string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", name, err)
	}
	stored := r.codec.encodeDocument(b)
	defer stored.Close()
	_, err = r.b.Put(ctx, name, stored)
	return err
}

// GetJSON reads a document written by PutJSON.
func (r *Repository) GetJSON(ctx context.Context, name string, v any) error {
	stored, err := r.b.Get(ctx, name, 0, -1)
	if err != nil {
		return err
	}
	defer stored.Close()
	plain, err := r.codec.decode(stored)
	if err != nil {
		return fmt.Errorf("read %s: %w: %w", name, ErrUndecodable, err)
	}
	defer plain.Close()
	if err := json.NewDecoder(io.LimitReader(plain, 64<<20)).Decode(v); err != nil {
		return fmt.Errorf("read %s: %w: %w", name, ErrUndecodable, err)
	}
	return nil
}

// ErrUndecodable means a document's stored bytes do not decode: damage, or another key, as
// opposed to a storage error. A reader of many documents skips such a one and names it.
var ErrUndecodable = errors.New("cannot decode")
