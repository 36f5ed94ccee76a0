package restore

import (
	"fmt"
	"slices"
	"strings"
)

// Reach is which configured replicas a restore could verify: the row-count check runs on the
// replicas that answered when it connected, and says nothing about the others.
type Reach struct {
	Verified    []string `json:"verified_replicas"`
	Unreachable []string `json:"unreachable_replicas"`
}

// Reach is the configured replicas split by whether this restorer reached them.
func (r *Restorer) Reach() Reach {
	return reachOf(r.opts.Native, func(addr string) bool { _, ok := r.servers[addr]; return ok })
}

func reachOf(configured []string, reached func(string) bool) Reach {
	rc := Reach{Verified: []string{}, Unreachable: []string{}}
	for _, addr := range configured {
		if reached(addr) {
			rc.Verified = append(rc.Verified, addr)
		} else {
			rc.Unreachable = append(rc.Unreachable, addr)
		}
	}
	slices.Sort(rc.Verified)
	slices.Sort(rc.Unreachable)
	return rc
}

// Summary is the line a finished restore ends with: where the row counts were verified and,
// by name, where they were not.
func (rc Reach) Summary() string {
	if len(rc.Unreachable) == 0 {
		return "row counts verified on every replica (" + strings.Join(rc.Verified, ", ") + ")"
	}
	return fmt.Sprintf("row counts verified on %s; NOT verified on %s (unreachable): check them with `tracevault check` once they are back",
		strings.Join(rc.Verified, ", "), strings.Join(rc.Unreachable, ", "))
}

// Err is the failure a restore reports for replicas it could not verify, unless the operator
// accepted that (restore --allow-unreachable): a restore that exits 0 must have checked every
// configured replica.
func (rc Reach) Err(allowUnreachable bool) error {
	if len(rc.Unreachable) == 0 || allowUnreachable {
		return nil
	}
	return fmt.Errorf("restore: replicas %s were unreachable, so their rows were not verified; the reachable ones were (pass --allow-unreachable to accept that)",
		strings.Join(rc.Unreachable, ", "))
}

// planNote tells a dry run ahead of time what the restore will not verify, and that it will
// then exit non-zero unless allowed; empty when every replica answered.
func (rc Reach) planNote() string {
	if len(rc.Unreachable) == 0 {
		return ""
	}
	return fmt.Sprintf("replicas %s are unreachable: their rows will not be verified, and the restore will fail for it unless --allow-unreachable",
		strings.Join(rc.Unreachable, ", "))
}
