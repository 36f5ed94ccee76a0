package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
)

// ErrImmutable is returned for a delete the storage refused because the object is immutable:
// under a time-based retention (version-level immutability) or a legal hold. Prune keeps going
// and reports such objects as retained.
var ErrImmutable = errors.New("the object is immutable (a time-based retention policy or a legal hold)")

// ErrNoLegalHold means the storage cannot hold objects (a directory; Azurite, which does not
// implement it).
var ErrNoLegalHold = errors.New("legal holds are not possible here")

// LegalHolder is the optional capability of a backend whose storage can put an object under a
// legal hold (Azure, with version-level immutability enabled on the container or account).
type LegalHolder interface {
	SetLegalHold(ctx context.Context, name string, hold bool) error
}

// SetLegalHold sets or clears the legal hold of one blob (Set Legal Hold: PUT ?comp=legalhold,
// x-ms-legal-hold). It needs a credential allowed to (a SAS with permission "i", or a role with
// .../blobs/immutableStorage/runAsSuperUser/action or owner rights), which the daemon's is not.
func (a *Azure) SetLegalHold(ctx context.Context, name string, hold bool) error {
	_, err := a.c.NewBlobClient(a.blob(name)).SetLegalHold(ctx, hold, nil)
	if bloberror.HasCode(err, "APINotImplemented") {
		err = fmt.Errorf("%w: the storage does not implement it (Azurite does not): %w", ErrNoLegalHold, err)
	}
	if err != nil {
		return a.scrub(fmt.Errorf("set legal hold %t on %s in %s: %w", hold, name, a, notFound(err)))
	}
	return nil
}

// immutableDelete turns a delete refused for immutability into ErrImmutable, saying until when
// the object is retained and whether a legal hold holds it, as far as its properties tell.
func (a *Azure) immutableDelete(ctx context.Context, name string, err error) error {
	if !bloberror.HasCode(err, bloberror.BlobImmutableDueToPolicy) {
		return err
	}
	var why []string
	if p, perr := a.c.NewBlobClient(a.blob(name)).GetProperties(ctx, nil); perr == nil {
		if p.ImmutabilityPolicyExpiresOn != nil {
			why = append(why, "retained until "+p.ImmutabilityPolicyExpiresOn.UTC().Format(time.RFC3339))
		}
		if p.LegalHold != nil && *p.LegalHold {
			why = append(why, "under a legal hold")
		}
	}
	if len(why) == 0 {
		why = append(why, "retention unknown")
	}
	return fmt.Errorf("%w: %s: %w", ErrImmutable, strings.Join(why, ", "), err)
}

// HoldReport says which objects a hold or a release touched.
type HoldReport struct {
	Snapshot string `json:"snapshot"`
	Hold     bool   `json:"hold"`
	Objects  int    `json:"objects"` // the manifest and every object it references
}

// Hold puts a snapshot (its manifest and every object it references) under a legal hold, or
// releases it: for an incident, so that no credential, prune's included, can delete it until
// released. Objects shared with other snapshots are held too, which is what keeps this one
// restorable.
func (r *Repository) Hold(ctx context.Context, id string, hold bool) (HoldReport, error) {
	rep := HoldReport{Hold: hold}
	lh, ok := rawBackend(r.b).(LegalHolder)
	if !ok {
		return rep, fmt.Errorf("hold %s: %w: %s has no legal holds", id, ErrNoLegalHold, r.b)
	}
	m, err := r.Snapshot(ctx, id)
	if err != nil {
		return rep, err
	}
	rep.Snapshot = m.ID
	names := []string{manifestName(m.ID)}
	seen := map[string]bool{}
	for _, o := range m.Objects {
		if n := o.Name(); n != "" && !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	for _, n := range names {
		if err := lh.SetLegalHold(ctx, n, hold); err != nil {
			return rep, fmt.Errorf("hold %s (%d of %d objects done): %w", m.ID, rep.Objects, len(names), err)
		}
		rep.Objects++
	}
	return rep, nil
}

// rawBackend is b without the append-only wrapper.
func rawBackend(b Backend) Backend {
	if u, ok := b.(interface{ Unwrap() Backend }); ok {
		return u.Unwrap()
	}
	return b
}

// ContainerImmutability is what the container's properties say of its immutability, as far
// as the credential may read them.
type ContainerImmutability struct {
	VersionLevel bool `json:"version_level"` // immutable storage with versioning enabled
	Policy       bool `json:"policy"`        // a container-level time-based retention policy
	LegalHold    bool `json:"legal_hold"`    // a container-level legal hold
}

// Immutability reads the container's immutability flags (Get Container Properties). The
// retention period itself is only in the management plane, which tracevault does not call.
func (a *Azure) Immutability(ctx context.Context) (ContainerImmutability, error) {
	p, err := a.c.GetProperties(ctx, nil)
	if err != nil {
		return ContainerImmutability{}, a.scrub(fmt.Errorf("read the properties of %s: %w", a, err))
	}
	is := func(b *bool) bool { return b != nil && *b }
	return ContainerImmutability{VersionLevel: is(p.IsImmutableStorageWithVersioningEnabled), Policy: is(p.HasImmutabilityPolicy), LegalHold: is(p.HasLegalHold)}, nil
}
