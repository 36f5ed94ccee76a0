package pitr

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/tracevault/tracevault/snapshot/store"
)

// Pins are the base snapshots retention must keep whatever its rules: the base of the newest
// chain of each database and slot, which the newest restorable point (and the running stream)
// continues from. (The newest pitr-base snapshot is not always it: a base whose chain record
// was never written, after a crash, is newer.)
func Pins(ctx context.Context, repo *store.Repository) (map[string]string, error) {
	chains, _, err := ReadChains(ctx, repo)
	if err != nil {
		return nil, err
	}
	pins := map[string]string{}
	for _, c := range newestChains(chains) {
		pins[c.Base] = "base of the newest PostgreSQL point-in-time chain " + c.ID
	}
	return pins, nil
}

// newestChains is the newest chain of each database and slot (chains oldest first).
func newestChains(chains []Chain) map[string]Chain {
	out := map[string]Chain{}
	for _, c := range chains {
		out[c.Database+"\x00"+c.Slot] = c
	}
	return out
}

// RemovedChain is a chain prune removed (or would remove) with its base.
type RemovedChain struct {
	Chain    string `json:"chain"`
	Base     string `json:"base"`
	Segments int    `json:"segments"`
	Files    int    `json:"files"`
	Bytes    int64  `json:"bytes"`
	// Leftover is a directory without a chain record: what an interrupted prune left.
	Leftover bool `json:"leftover,omitempty"`
}

// Prune removes the chains whose base snapshot retention did not keep (kept: snapshot id ->
// reason): without its base a chain restores nothing. A chain whose base is kept stays whole,
// and the newest chain of each database and slot is never removed. Damaged chain records are left
// alone and returned: their base is unknown. The chain record goes first, so an interrupted
// prune leaves a directory without one, which the next prune removes.
func Prune(ctx context.Context, repo *store.Repository, kept map[string]string, dryRun bool) ([]RemovedChain, []Damaged, error) {
	chains, damaged, err := ReadChains(ctx, repo)
	if err != nil {
		return nil, nil, err
	}
	files := map[string][]store.ObjectInfo{} // chain id -> its files
	if err := repo.Backend().List(ctx, root, func(o store.ObjectInfo) error {
		id, _, ok := strings.Cut(strings.TrimPrefix(o.Name, root), "/")
		if ok {
			files[id] = append(files[id], o)
		}
		return nil
	}); err != nil {
		return nil, nil, fmt.Errorf("list point-in-time chains: %w", err)
	}
	newest := newestChains(chains)
	var out []RemovedChain
	remove := func(rc RemovedChain) error {
		objs := files[rc.Chain]
		// The chain record first: once it is gone the chain no longer exists for anyone.
		sort.SliceStable(objs, func(i, j int) bool { return objs[i].Name == chainName(rc.Chain) && objs[j].Name != chainName(rc.Chain) })
		for _, o := range objs {
			rc.Files++
			rc.Bytes += o.Size
			if strings.HasSuffix(o.Name, ".seg") {
				rc.Segments++
			}
			if dryRun {
				continue
			}
			if err := repo.Backend().Delete(ctx, o.Name); err != nil && !errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("remove point-in-time chain %s: %w", rc.Chain, err)
			}
		}
		out = append(out, rc)
		return nil
	}
	known := map[string]bool{}
	for _, d := range damaged {
		known[strings.TrimSuffix(strings.TrimPrefix(chainDir(d.Name), root), "/")] = true
	}
	for _, c := range chains {
		known[c.ID] = true
		if _, ok := kept[c.Base]; ok || newest[c.Database+"\x00"+c.Slot].ID == c.ID {
			continue
		}
		if err := remove(RemovedChain{Chain: c.ID, Base: c.Base}); err != nil {
			return out, damaged, err
		}
	}
	for id, objs := range files {
		hasRecord := false
		for _, o := range objs {
			hasRecord = hasRecord || o.Name == chainName(id)
		}
		// A record listed but not read (written since, or damaged) keeps its directory.
		if known[id] || hasRecord {
			continue
		}
		if err := remove(RemovedChain{Chain: id, Leftover: true}); err != nil {
			return out, damaged, err
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Chain < out[j].Chain })
	gone := map[string]bool{}
	for _, rc := range out {
		gone[rc.Chain] = true
	}
	// Heads an append-only writer superseded in the chains that stay (appendonly.go).
	if _, err := pruneHeads(ctx, repo, files, gone, dryRun); err != nil {
		return out, damaged, err
	}
	return out, damaged, nil
}
