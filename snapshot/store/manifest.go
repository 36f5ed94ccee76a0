package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"
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
	// Sections hold each source's own record (schema, partitions, LSN, zxid, group map).
	Sections map[string]json.RawMessage `json:"sections,omitempty"`
	Objects  []ManifestObject           `json:"objects"`
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
	return &Manifest{ID: now.Format("20060102T150405Z") + "-" + newID()[:6], Start: now, Host: host, Tags: tags, Sections: map[string]json.RawMessage{}}
}

func manifestName(id string) string { return "snapshots/" + id + ".json" }

// CommitManifest writes the manifest: the moment the snapshot comes into existence. Its objects
// must all be stored already.
func (r *Repository) CommitManifest(ctx context.Context, m *Manifest) error {
	if m.Status != StatusComplete && m.Status != StatusPartial {
		return fmt.Errorf("commit snapshot %s: status %q must be complete or partial", m.ID, m.Status)
	}
	if m.End.IsZero() {
		m.End = time.Now().UTC()
	}
	if err := r.PutJSON(ctx, manifestName(m.ID), m); err != nil {
		return fmt.Errorf("commit snapshot %s: %w", m.ID, err)
	}
	return nil
}

// Snapshots lists every manifest, oldest first.
func (r *Repository) Snapshots(ctx context.Context) ([]Manifest, error) {
	var names []string
	if err := r.b.List(ctx, "snapshots/", func(o ObjectInfo) error {
		if strings.HasSuffix(o.Name, ".json") {
			names = append(names, o.Name)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	out := make([]Manifest, 0, len(names))
	for _, n := range names {
		m, err := r.readManifest(ctx, n)
		if err != nil {
			return nil, err
		}
		out = append(out, *m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func (r *Repository) readManifest(ctx context.Context, name string) (*Manifest, error) {
	var m Manifest
	if err := r.GetJSON(ctx, name, &m); err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	return &m, nil
}

// ErrAmbiguous means an id prefix matches more than one snapshot.
var ErrAmbiguous = errors.New("ambiguous snapshot id")

// Snapshot finds a snapshot by id or unique id prefix; "latest" is the newest complete one.
func (r *Repository) Snapshot(ctx context.Context, id string) (*Manifest, error) {
	all, err := r.Snapshots(ctx)
	if err != nil {
		return nil, err
	}
	var found []Manifest
	for i := len(all) - 1; i >= 0; i-- {
		m := all[i]
		if id == "latest" && m.Status == StatusComplete {
			return &m, nil
		}
		if strings.HasPrefix(m.ID, id) {
			found = append(found, m)
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("snapshot %q: %w; 'tracevault list' shows the snapshots", id, ErrNotFound)
	case 1:
		return &found[0], nil
	default:
		return nil, fmt.Errorf("snapshot %q: %w (%d match); give more of the id", id, ErrAmbiguous, len(found))
	}
}

// DeleteSnapshot forgets a snapshot; its objects are removed by the next prune if nothing else
// references them.
func (r *Repository) DeleteSnapshot(ctx context.Context, id string) error {
	return r.b.Delete(ctx, manifestName(id))
}

// PutJSON and GetJSON store small documents (run history) through the codec.
func (r *Repository) PutJSON(ctx context.Context, name string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", name, err)
	}
	stored, _ := r.codec.encode(bytes.NewReader(b))
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
		return fmt.Errorf("read %s: %w", name, err)
	}
	defer plain.Close()
	if err := json.NewDecoder(io.LimitReader(plain, 64<<20)).Decode(v); err != nil {
		return fmt.Errorf("read %s: %w", name, err)
	}
	return nil
}
