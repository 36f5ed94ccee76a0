package store

import (
	"errors"
	"fmt"
	"regexp"
)

// Every name tracevault builds from something it read back from storage (a manifest's id, the
// object ids it lists, a run's id) is checked here first against the exact form the writer
// produces. Storage is a trust boundary: anyone who can write the container can write a
// manifest, and "../../x" or a one-character id must never become a path, a blob name or a slice
// index.
var (
	// snapshotIDForm is NewManifest's: the UTC start time, a dash, 6 random lowercase hex digits.
	snapshotIDForm = regexp.MustCompile(`^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6}$`)
	// objectIDForm is newID's: 16 random bytes in lowercase hex.
	objectIDForm = regexp.MustCompile(`^[0-9a-f]{32}$`)
	// runIDForm is the jobs package's run id: 4 random bytes in lowercase hex.
	runIDForm  = regexp.MustCompile(`^[0-9a-f]{8}$`)
	sha256Form = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// ErrInvalidID means an id read from storage is not of the form tracevault writes: the
// repository was damaged or written by someone else.
var ErrInvalidID = errors.New("invalid id")

func checkID(what, id string, form *regexp.Regexp, example string) error {
	if form.MatchString(id) {
		return nil
	}
	if len(id) > 80 {
		id = id[:80] + "…"
	}
	return fmt.Errorf("%s %q: %w; tracevault writes ids like %s", what, id, ErrInvalidID, example)
}

// ValidSnapshotID checks a snapshot id as NewManifest writes it.
func ValidSnapshotID(id string) error {
	return checkID("snapshot id", id, snapshotIDForm, "20261124T031500Z-1a2b3c")
}

// ValidObjectID checks an object id as PutObject writes it.
func ValidObjectID(id string) error {
	return checkID("object id", id, objectIDForm, "32 lowercase hex digits")
}

// ValidRunID checks a run id as the daemon writes it (8 lowercase hex digits).
func ValidRunID(id string) error {
	return checkID("run id", id, runIDForm, "8 lowercase hex digits")
}
