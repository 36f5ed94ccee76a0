package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// manifestCache keeps, per manifest name, the decoded result of its last read (the manifest, or
// why it is damaged), keyed by what the listing said of the object: its size and modification
// time. The catalog is read by the status page every few seconds, by every backup's index and by
// prune, list and show; without it each of those read and decoded every manifest, one GET each,
// which on Azure with a year of hourly snapshots is thousands of requests per status refresh.
//
// Why (size, modification time) is a safe key, although Azure's Last-Modified has one-second
// granularity: a manifest is written once, by CommitManifest, under an id no other snapshot has
// (the time to the millisecond and random digits, snapshotID), and is never rewritten in place: the
// only other writes under snapshots/ are deletes (DeleteSnapshot, DeleteDamaged, prune through
// DeleteSnapshot), and a deleted name drops out of the listing and so out of the cache. A name
// therefore only ever holds one content. A manifest put twice holds the same snapshot again:
// CommitManifest's handling of a lost answer does not put again (it stats the name, and a put
// that landed is whole), a request the SDK retries sends the same bytes, and a second
// CommitManifest of one snapshot would store the same plaintext (in an encrypted repository
// under another nonce, with the same MAC); whichever copy was read decodes to the same answer. What the key guards against is anything else writing the
// name: damage or a hand edit changes the modification time (and on a filesystem, whose times
// are finer, even a same-second one does); only a rewrite of the same size within the same
// second of Azure's clock could go unseen, and nothing tracevault does writes a manifest twice
// with different content. Verify, whose purpose is finding damage (a filesystem's bit rot keeps
// the size and the time), never trusts the cache: it reads every manifest afresh, and what it
// reads replaces the cached answer.
//
// Each name is read outside the lock, so concurrent callers (the status page and a backup) may
// both read a new manifest once; either's result is right, because the result is a function of
// the bytes under the listed key.
type manifestCache struct {
	mu      sync.Mutex
	entries map[string]cachedManifest
}

// cachedManifest is one manifest's last read. m is shared by every caller of catalog and must
// never be changed or handed out: Catalog returns clones.
type cachedManifest struct {
	size    int64
	modTime time.Time
	m       *Manifest // nil when damaged
	damage  string    // why it is damaged: a property of its bytes, as the manifest is
}

// matches reports whether the entry was read from the object the listing describes. A listing
// without a modification time never matches: size alone does not tell two contents apart.
func (e cachedManifest) matches(o ObjectInfo) bool {
	return !o.ModTime.IsZero() && e.size == o.Size && e.modTime.Equal(o.ModTime)
}

func (c *manifestCache) get(o ObjectInfo) (cachedManifest, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[o.Name]
	return e, ok && e.matches(o)
}

func (c *manifestCache) put(name string, e cachedManifest) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = map[string]cachedManifest{}
	}
	c.entries[name] = e
}

func (c *manifestCache) drop(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, name)
}

// keepOnly drops every name the listing no longer holds, so that the cache holds at most what
// the repository lists. A concurrent reader with an older listing may drop a newer name: that
// costs one more read later, never a wrong answer.
func (c *manifestCache) keepOnly(listed map[string]bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	maps.DeleteFunc(c.entries, func(name string, _ cachedManifest) bool { return !listed[name] })
}

func (c *manifestCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// readManifest is the manifest the listing entry o names: its cached result when the listing
// still describes the object that was read, else a read of it (fresh forces one). Damage is an
// answer (cached), ErrNotFound means it was deleted since the listing, and any other error is a
// failure to reach the storage, which is never cached.
func (r *Repository) readManifest(ctx context.Context, o ObjectInfo, fresh bool) (cachedManifest, error) {
	if !fresh {
		if e, ok := r.manifests.get(o); ok {
			return e, nil
		}
	}
	raw, err := r.readStored(ctx, o.Name)
	if errors.Is(err, ErrNotFound) {
		r.manifests.drop(o.Name)
		return cachedManifest{}, err
	}
	if err != nil && !errors.Is(err, errTooLarge) {
		return cachedManifest{}, fmt.Errorf("read manifest %s: %w", o.Name, err)
	}
	e := cachedManifest{size: o.Size, modTime: o.ModTime}
	if err == nil {
		e.m, err = r.decodeManifest(o.Name, raw)
	}
	if err != nil {
		e.m, e.damage = nil, err.Error()
	}
	r.manifests.put(o.Name, e)
	return e, nil
}

// catalog lists snapshots/ and reads the manifests it names, through the cache unless fresh:
// the valid ones oldest first, shared with the cache (read-only), and the damaged ones.
func (r *Repository) catalog(ctx context.Context, fresh bool) ([]*Manifest, []DamagedManifest, error) {
	var listed []ObjectInfo
	if err := r.b.List(ctx, "snapshots/", func(o ObjectInfo) error {
		if strings.HasSuffix(o.Name, ".json") {
			listed = append(listed, o)
		}
		return nil
	}); err != nil {
		return nil, nil, err
	}
	names := make(map[string]bool, len(listed))
	snaps := make([]*Manifest, 0, len(listed))
	var damaged []DamagedManifest
	for _, o := range listed {
		names[o.Name] = true
		e, err := r.readManifest(ctx, o, fresh)
		if errors.Is(err, ErrNotFound) {
			continue // deleted since the listing
		}
		if err != nil {
			return nil, nil, err
		}
		if e.m == nil {
			damaged = append(damaged, DamagedManifest{Name: o.Name, Error: e.damage})
			continue
		}
		snaps = append(snaps, e.m)
	}
	r.manifests.keepOnly(names)
	sort.Slice(snaps, func(i, j int) bool { return snaps[i].ID < snaps[j].ID })
	sort.Slice(damaged, func(i, j int) bool { return damaged[i].Name < damaged[j].Name })
	return snaps, damaged, nil
}

// cloneAll copies shared manifests out of the cache for a caller, who may change them.
func cloneAll(shared []*Manifest) []Manifest {
	out := make([]Manifest, len(shared))
	for i, m := range shared {
		out[i] = m.clone()
	}
	return out
}

// clone is a deep copy of m: no slice, map or pointer of it is shared with m, so a caller can
// change what Catalog returned without changing the cached manifest. Strings and times are
// values. TestManifestCloneSharesNothing fails when a field is added that this misses.
func (m *Manifest) clone() Manifest {
	c := *m
	c.Tags = slices.Clone(m.Tags)
	c.Components = slices.Clone(m.Components)
	if m.Scope != nil {
		s := *m.Scope
		s.Sources = slices.Clone(s.Sources)
		s.Narrowed = slices.Clone(s.Narrowed)
		s.Databases = slices.Clone(s.Databases)
		s.Tables = slices.Clone(s.Tables)
		s.Exclude = slices.Clone(s.Exclude)
		c.Scope = &s
	}
	if m.Cut != nil {
		cut := *m.Cut
		cut.Sources = slices.Clone(cut.Sources)
		c.Cut = &cut
	}
	if m.Sections != nil {
		// The raw sections are copied too: every reader today only decodes them, but a caller
		// that appended to one in place would otherwise write into the cached manifest.
		c.Sections = make(map[string]json.RawMessage, len(m.Sections))
		for k, v := range m.Sections {
			c.Sections[k] = json.RawMessage(bytes.Clone(v))
		}
	}
	c.Objects = slices.Clone(m.Objects)
	c.Auth = slices.Clone(m.Auth)
	return c
}
