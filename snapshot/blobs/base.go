package blobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/tracevault/tracevault/snapshot/store"
)

// base is the previous snapshot's listing of the same container, read in step with the new one.
type base struct {
	id string
	// copied maps the pack keys of the blobs copied server-side to their names.
	copied map[string]string

	rc   io.ReadCloser
	lr   *ListingReader
	cur  *Record
	done bool
}

// openBase finds the newest snapshot whose blobs component of containerURL completed.
func openBase(ctx context.Context, repo *store.Repository, containerURL string) (*base, error) {
	snaps, err := repo.Snapshots(ctx)
	if err != nil {
		return nil, err
	}
	for i := len(snaps) - 1; i >= 0; i-- {
		m := snaps[i]
		ref, sec, ok := listingOf(&m)
		if !ok || sec.URL != containerURL {
			continue
		}
		rc, err := repo.OpenObject(ctx, ref)
		if err != nil {
			return nil, fmt.Errorf("read the blob listing of snapshot %s: %w", m.ID, err)
		}
		lr, err := NewListingReader(rc)
		if err != nil {
			rc.Close()
			return nil, fmt.Errorf("snapshot %s: %w", m.ID, err)
		}
		b := &base{id: m.ID, rc: rc, lr: lr, copied: map[string]string{}}
		for _, o := range m.Objects {
			if key, ok := packKey(o.Fingerprint); ok && o.Source == Name && o.Format == store.FormatRaw {
				b.copied[key] = o.Partition
			}
		}
		return b, nil
	}
	return &base{done: true}, nil
}

// listingOf returns a manifest's blob listing and section, if its blobs component completed.
func listingOf(m *store.Manifest) (store.ObjectRef, Section, bool) {
	var sec Section
	complete := false
	for _, c := range m.Components {
		complete = complete || (c.Source == Name && c.Status == store.StatusComplete)
	}
	raw, ok := m.Sections[Name]
	if !complete || !ok || json.Unmarshal(raw, &sec) != nil {
		return store.ObjectRef{}, sec, false
	}
	for _, o := range m.Objects {
		if o.Source == Name && o.Kind == KindListing {
			return o.ObjectRef, sec, true
		}
	}
	return store.ObjectRef{}, sec, false
}

// find returns the base record named name, or nil; names must come in increasing order.
func (b *base) find(name string) (*Record, error) {
	for !b.done && (b.cur == nil || b.cur.Name < name) {
		r, err := b.lr.Next()
		if errors.Is(err, io.EOF) {
			b.done, b.cur = true, nil
			break
		}
		if err != nil {
			return nil, fmt.Errorf("previous snapshot %s: %w", b.id, err)
		}
		b.cur = &r
	}
	if b.cur != nil && b.cur.Name == name {
		return b.cur, nil
	}
	return nil, nil
}

func (b *base) Close() {
	if b.rc != nil {
		b.rc.Close()
	}
}
