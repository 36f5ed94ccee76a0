package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// doctorPrefix is where the protection probes create their canaries: apart from everything a
// reader of the repository lists, and one new object per probe (it may never be removable).
const doctorPrefix = "doctor/"

// ProtectionProbe is one attempt of the doctor with the repository's own credential.
type ProtectionProbe struct {
	Probe   string `json:"probe"`   // "create", "overwrite", "delete"
	Allowed bool   `json:"allowed"` // the storage did it
	Detail  string `json:"detail"`  // what the storage answered, scrubbed of secrets
}

// ProtectionReport is what the doctor found: whether the credential the repository is opened
// with can overwrite and delete, probed on a fresh canary rather than taken from the
// configuration.
type ProtectionReport struct {
	Repository string            `json:"repository"`
	AppendOnly bool              `json:"append_only"`
	Canary     string            `json:"canary"`
	Probes     []ProtectionProbe `json:"probes"`
	// Problems are findings that contradict the mode: in append-only mode, a credential that
	// overwrote or deleted the canary; in any mode, one that could not create it.
	Problems []string `json:"problems,omitempty"`
	// Notes are findings worth knowing that are not problems (a credential that may delete,
	// where append_only is not set).
	Notes []string `json:"notes,omitempty"`
	// Immutability is the container's, when the storage has it and the credential may read it.
	Immutability *ContainerImmutability `json:"immutability,omitempty"`
}

// ProbeProtection creates a canary under doctor/ (create-only) and tries to overwrite it and to
// delete it with the repository's credential as it is, bypassing the append-only mode's own
// refusals: what it reports is what the storage enforces, not what tracevault refrains from.
func (r *Repository) ProbeProtection(ctx context.Context) (ProtectionReport, error) {
	raw := r.b
	if u, ok := raw.(interface{ Unwrap() Backend }); ok {
		raw = u.Unwrap()
	}
	rep := ProtectionReport{Repository: raw.String(), AppendOnly: r.AppendOnly(),
		Canary: doctorPrefix + "canary-" + time.Now().UTC().Format("20060102T150405Z") + "-" + newID()[:12]}
	original := []byte("tracevault doctor canary: created once, must not be overwritten or deleted\n")

	_, err := raw.Create(ctx, rep.Canary, bytes.NewReader(original))
	rep.add("create", err == nil, err)
	if err != nil {
		rep.Problems = append(rep.Problems, fmt.Sprintf("the credential cannot create %s: backups cannot write either", rep.Canary))
		return rep, nil
	}

	_, err = raw.Put(ctx, rep.Canary, bytes.NewReader([]byte("overwritten by tracevault doctor\n")))
	overwrote := err == nil
	if !overwrote {
		// A refusal must also have left the canary as it was.
		got, rerr := readAllObject(ctx, raw, rep.Canary)
		if rerr != nil {
			return rep, fmt.Errorf("doctor: read back %s: %w", rep.Canary, rerr)
		}
		overwrote = !bytes.Equal(got, original)
	}
	rep.add("overwrite", overwrote, err)

	err = raw.Delete(ctx, rep.Canary)
	_, serr := raw.Stat(ctx, rep.Canary)
	deleted := errors.Is(serr, ErrNotFound)
	if serr != nil && !deleted {
		return rep, fmt.Errorf("doctor: stat %s after the delete probe: %w", rep.Canary, serr)
	}
	rep.add("delete", deleted, err)

	switch {
	case rep.AppendOnly && (overwrote || deleted):
		for _, p := range rep.Probes[1:] {
			if p.Allowed {
				rep.Problems = append(rep.Problems, fmt.Sprintf("append_only is set, but the credential could %s an existing object: a thief of it can destroy the repository; give the daemon a credential that cannot (an Azure container SAS with permissions rcl, or a role without blob write and delete)", p.Probe))
			}
		}
	case !rep.AppendOnly && (overwrote || deleted):
		rep.Notes = append(rep.Notes, "the credential can overwrite and delete: whoever steals it can destroy every snapshot; see [storage] append_only")
	case !rep.AppendOnly:
		rep.Notes = append(rep.Notes, "the credential cannot overwrite or delete, but append_only is not set: backups that rewrite or delete will fail; set [storage] append_only = true")
	}
	if az, ok := raw.(interface {
		Immutability(context.Context) (ContainerImmutability, error)
	}); ok {
		im, err := az.Immutability(ctx)
		switch {
		case err != nil:
			rep.Notes = append(rep.Notes, "the container's immutability settings are unreadable with this credential: "+ErrorText(err.Error()))
		case !im.VersionLevel && !im.Policy:
			rep.Immutability = &im
			rep.Notes = append(rep.Notes, "the container has no immutability policy: whoever holds the account's key can still delete every snapshot; consider version-level immutability with a retention longer than [retention] keeps")
		default:
			rep.Immutability = &im
		}
	}
	if _, ok := raw.(*FS); ok && rep.AppendOnly {
		rep.Notes = append(rep.Notes, "on a directory append_only is advisory: the file system lets this user overwrite and delete")
	}
	return rep, nil
}

func (rep *ProtectionReport) add(probe string, allowed bool, err error) {
	p := ProtectionProbe{Probe: probe, Allowed: allowed, Detail: "done"}
	if err != nil {
		p.Detail = "refused: " + ErrorText(err.Error())
	} else if !allowed {
		p.Detail = "answered success, but the object is unchanged"
	}
	rep.Probes = append(rep.Probes, p)
}

func readAllObject(ctx context.Context, b Backend, name string) ([]byte, error) {
	rc, err := b.Get(ctx, name, 0, -1)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(io.LimitReader(rc, 1<<20))
}
