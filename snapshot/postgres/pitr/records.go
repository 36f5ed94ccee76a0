package pitr

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/tracevault/tracevault/snapshot/store"
)

// record is a chain's, a segment's or a head's record: authenticated in an encrypted repository
// over its content and its name, and checked against its name (a record stored where another
// belongs is refused in a plaintext repository too).
type record[T any] interface {
	*T
	macs() *[]store.ManifestMAC
	// check says what in the record contradicts its name.
	check(name string) error
}

func (c *Chain) macs() *[]store.ManifestMAC   { return &c.Auth }
func (s *Segment) macs() *[]store.ManifestMAC { return &s.Auth }
func (h *Head) macs() *[]store.ManifestMAC    { return &h.Auth }

func (c *Chain) check(name string) error {
	if name != chainName(c.ID) {
		return fmt.Errorf("it holds chain %q, whose record is %s", c.ID, chainName(c.ID))
	}
	if err := store.ValidSnapshotID(c.Base); err != nil {
		return fmt.Errorf("base: %w", err)
	}
	return nil
}

func (s *Segment) check(name string) error {
	if want := segmentName(s.Chain, s.EndLSN, "json"); name != want {
		return fmt.Errorf("it describes the segment of chain %q ending at %s, whose record is %s", s.Chain, s.EndLSN, want)
	}
	if s.StartLSN > s.EndLSN {
		return fmt.Errorf("it starts at %s, after its end %s", s.StartLSN, s.EndLSN)
	}
	if s.BodyTag != "" && !bodyTag.MatchString(s.BodyTag) {
		return fmt.Errorf("its body tag %q is not 16 lowercase hex digits", s.BodyTag) // it becomes part of a name
	}
	return nil
}

func (h *Head) check(name string) error {
	if strings.HasPrefix(name, headsDir(h.Chain)) && name == headKey(h) {
		return nil // an append-only repository's head (appendonly.go)
	}
	if want := headName(h.Chain); name != want {
		return fmt.Errorf("it is the head of chain %q, whose head is %s", h.Chain, want)
	}
	return nil
}

var bodyTag = regexp.MustCompile(`^[0-9a-f]{16}$`)

// errRecord marks a record refused for what it holds (as opposed to a storage error).
var errRecord = errors.New("point-in-time record refused")

// putRecord authenticates rec for name and stores it.
func putRecord[T any, P record[T]](ctx context.Context, repo *store.Repository, name string, rec P) error {
	*rec.macs() = nil
	auth, err := store.SignRecord(repo, name, (*T)(rec))
	if err != nil {
		return err
	}
	*rec.macs() = auth
	return repo.PutJSON(ctx, name, rec)
}

// createRecord authenticates rec for name and stores it only if name is free (store.ErrExists
// otherwise): a segment's record, which no other writer may replace.
func createRecord[T any, P record[T]](ctx context.Context, repo *store.Repository, name string, rec P) error {
	*rec.macs() = nil
	auth, err := store.SignRecord(repo, name, (*T)(rec))
	if err != nil {
		return err
	}
	*rec.macs() = auth
	return repo.CreateJSON(ctx, name, rec)
}

// getRecord reads the record at name into rec and refuses it, naming it and the cause, unless
// it is authentic and is what its name says.
func getRecord[T any, P record[T]](ctx context.Context, repo *store.Repository, name string, rec P) error {
	if err := repo.GetJSON(ctx, name, rec); err != nil {
		return err
	}
	auth := *rec.macs()
	*rec.macs() = nil
	err := store.AuthenticateRecord(repo, name, (*T)(rec), auth)
	*rec.macs() = auth
	switch {
	case errors.Is(err, store.ErrNoRecordMAC):
		return fmt.Errorf("%w: %s: %w: written by a tracevault from before point-in-time records were authenticated, or by someone without the repository's keys; it cannot be trusted, so its chain is not replayed: restore the chain's base snapshot by id instead (a plain restore), and remove the directory %s once it is not needed",
			errRecord, name, err, chainDir(name))
	case err != nil:
		return fmt.Errorf("%w: %s: %w; do not restore through this chain: restore its base snapshot by id, or to a point another chain covers, and find out who wrote to the repository", errRecord, name, err)
	}
	if err := rec.check(name); err != nil {
		return fmt.Errorf("%w: %s: %w; it was moved or altered: restore to a point another chain covers, or the chain's base snapshot by id", errRecord, name, err)
	}
	return nil
}

// chainDir is the chain directory a record's name is in.
func chainDir(name string) string {
	id, _, _ := strings.Cut(strings.TrimPrefix(name, root), "/")
	return root + id + "/"
}

// readSegment reads a segment record; its name (checked against its content) binds it to its
// chain and end.
func readSegment(ctx context.Context, repo *store.Repository, name string) (Segment, error) {
	var s Segment
	err := getRecord(ctx, repo, name, &s)
	if err != nil && !errors.Is(err, errRecord) {
		err = fmt.Errorf("read segment record %s: %w", name, err)
	}
	return s, err
}
