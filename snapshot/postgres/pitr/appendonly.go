package pitr

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tracevault/tracevault/snapshot/store"
)

// In an append-only repository ([storage] append_only) no record is rewritten: the two records
// a chain used to rewrite in place become new objects, read by "newest valid wins".
//
//	pitr/<chain>/end.json                       the chain's end (ChainEnd), created once
//	pitr/<chain>/head/<EndLSN>-<written>.json   each head, a new object per advance
//
// Elsewhere the chain record's Ended and head.json are rewritten as before; readers read both.

// ChainEnd records that a chain ended, beside its chain record rather than in it.
type ChainEnd struct {
	Chain     string              `json:"chain"`
	Ended     time.Time           `json:"ended"`
	EndReason string              `json:"end_reason"`
	Auth      []store.ManifestMAC `json:"auth,omitempty"`
}

func (e *ChainEnd) macs() *[]store.ManifestMAC { return &e.Auth }

func (e *ChainEnd) check(name string) error {
	if want := chainEndName(e.Chain); name != want {
		return fmt.Errorf("it is the end of chain %q, whose end is %s", e.Chain, want)
	}
	return nil
}

func chainEndName(id string) string { return root + id + "/end.json" }

func headsDir(id string) string { return root + id + "/head/" }

// headKey is a head's name in an append-only repository: by end LSN, then by when it was written,
// so the last name is the newest head.
func headKey(h *Head) string {
	return fmt.Sprintf("%s%016X-%s.json", headsDir(h.Chain), uint64(h.EndLSN), h.Written.UTC().Format("20060102T150405.000000000Z"))
}

// recordEnd records the end of chain c: a new record in an append-only repository, else the
// chain record rewritten.
func recordEnd(ctx context.Context, repo *store.Repository, c *Chain) error {
	if !repo.AppendOnly() {
		return putRecord(ctx, repo, chainName(c.ID), c)
	}
	err := createRecord(ctx, repo, chainEndName(c.ID), &ChainEnd{Chain: c.ID, Ended: c.Ended, EndReason: c.EndReason})
	if errors.Is(err, store.ErrExists) {
		return nil // ended already (a retried record): the first end stands
	}
	return err
}

// readChainEnd sets c's end from its end record, if it has one. An end record that cannot be
// trusted is returned as an errRecord error for the caller to name.
func readChainEnd(ctx context.Context, repo *store.Repository, c *Chain) error {
	var e ChainEnd
	err := getRecord(ctx, repo, chainEndName(c.ID), &e)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil
	case err != nil:
		return err
	}
	if c.Ended.IsZero() {
		c.Ended, c.EndReason = e.Ended, e.EndReason
	}
	return nil
}

// writeHead records h: a new object in an append-only repository, else head.json rewritten.
func writeHead(ctx context.Context, repo *store.Repository, h *Head) error {
	if !repo.AppendOnly() {
		return putRecord(ctx, repo, headName(h.Chain), h)
	}
	return createRecord(ctx, repo, headKey(h), h)
}

// readHead reads the newest head of chain: the last of its head objects, or head.json, whichever
// reaches further. ErrNotFound when it has none.
func readHead(ctx context.Context, repo *store.Repository, chain string) (Head, error) {
	var names []string
	if err := repo.Backend().List(ctx, headsDir(chain), func(o store.ObjectInfo) error {
		if strings.HasSuffix(o.Name, ".json") {
			names = append(names, o.Name)
		}
		return nil
	}); err != nil {
		return Head{}, fmt.Errorf("list the heads of chain %s: %w", chain, err)
	}
	var legacy Head
	lerr := getRecord(ctx, repo, headName(chain), &legacy)
	if len(names) == 0 {
		return legacy, lerr
	}
	slices.Sort(names)
	var h Head
	if err := getRecord(ctx, repo, names[len(names)-1], &h); err != nil {
		return h, err
	}
	if lerr == nil && legacy.EndLSN > h.EndLSN {
		return legacy, nil
	}
	return h, nil
}

// superseded is how old a head object must be before prune removes it when a newer one exists.
const superseded = time.Hour

// pruneHeads removes the head objects an append-only writer superseded in the chains that stay
// (an idle database writes one per cut): all but the newest of each chain, once an hour old.
// Prune's identity may delete; files are the chains' objects as prune listed them.
func pruneHeads(ctx context.Context, repo *store.Repository, files map[string][]store.ObjectInfo, gone map[string]bool, dryRun bool) (int, error) {
	removed := 0
	for id, objs := range files {
		if gone[id] {
			continue
		}
		var heads []store.ObjectInfo
		for _, o := range objs {
			if strings.HasPrefix(o.Name, headsDir(id)) {
				heads = append(heads, o)
			}
		}
		slices.SortFunc(heads, func(a, b store.ObjectInfo) int { return strings.Compare(a.Name, b.Name) })
		for _, o := range heads[:max(len(heads)-1, 0)] {
			if time.Since(o.ModTime) < superseded {
				continue
			}
			removed++
			if dryRun {
				continue
			}
			if err := repo.Backend().Delete(ctx, o.Name); err != nil && !errors.Is(err, store.ErrNotFound) {
				return removed, fmt.Errorf("remove superseded head %s: %w", o.Name, err)
			}
		}
	}
	return removed, nil
}
