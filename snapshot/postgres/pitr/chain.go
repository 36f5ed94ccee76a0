package pitr

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/tracevault/tracevault/snapshot/postgres"
	"github.com/tracevault/tracevault/snapshot/store"
)

const root = "pitr/"

// Chain is one slot's stream of changes after its base snapshot.
type Chain struct {
	ID          string   `json:"id"`
	Database    string   `json:"database"`
	Slot        string   `json:"slot"`
	Publication string   `json:"publication"`
	Schemas     []string `json:"schemas"`
	// Base is the snapshot set holding the base; StartLSN the slot's consistent point, which the
	// base's snapshot is exactly the state before.
	Base     string `json:"base"`
	StartLSN LSN    `json:"start_lsn"`
	// BaseTime was read after the slot existed: everything committed before it is in the base
	// or the segments, so the chain restores to any time from it on.
	BaseTime time.Time `json:"base_time"`
	// Relations are the published tables as the base holds them; a relation message that differs
	// is a schema change, which logical decoding does not carry.
	Relations []Relation `json:"relations"`
	Created   time.Time  `json:"created"`
	Ended     time.Time  `json:"ended,omitzero"`
	EndReason string     `json:"end_reason,omitempty"`
	// Auth authenticates the record in an encrypted repository (records.go).
	Auth []store.ManifestMAC `json:"auth,omitempty"`
}

// Segment is a durable run of transactions, as its record describes it.
type Segment struct {
	Chain string `json:"chain"`
	// StartLSN is the previous segment's EndLSN (or the chain's StartLSN); every transaction
	// that committed in [StartLSN, EndLSN) is in this segment.
	StartLSN LSN `json:"start_lsn"`
	EndLSN   LSN `json:"end_lsn"`
	// Until: every transaction that committed before it is in this segment or an earlier one.
	Until        time.Time       `json:"until"`
	FirstCommit  time.Time       `json:"first_commit,omitzero"`
	LastCommit   time.Time       `json:"last_commit,omitzero"`
	LastLSN      LSN             `json:"last_commit_lsn,omitempty"`
	Transactions int64           `json:"transactions"`
	Changes      int64           `json:"changes"`
	Object       store.ObjectRef `json:"object"`
	// BodyTag, random per stored body, makes its name (bodyName) its writer's alone: two writers
	// of one chain that cut at the same LSN never overwrite each other's body. Empty in records
	// from before it, whose body is <end LSN>.seg.
	BodyTag   string              `json:"body,omitempty"`
	Sequences []postgres.Sequence `json:"sequences"`
	Written   time.Time           `json:"written"`
	Auth      []store.ManifestMAC `json:"auth,omitempty"`
}

// LSN is a WAL position, written as PostgreSQL writes it (16/B374D848).
type LSN uint64

func (l LSN) String() string { return pglogrepl.LSN(l).String() }

func (l LSN) MarshalText() ([]byte, error) { return []byte(l.String()), nil }

func (l *LSN) UnmarshalText(b []byte) error {
	v, err := ParseLSN(string(b))
	*l = v
	return err
}

// ParseLSN reads a WAL position as PostgreSQL writes it.
func ParseLSN(s string) (LSN, error) {
	v, err := pglogrepl.ParseLSN(s)
	if err != nil {
		return 0, fmt.Errorf("LSN %q: want hex/hex as PostgreSQL writes it (e.g. 16/B374D848)", s)
	}
	return LSN(v), nil
}

func chainName(id string) string { return root + id + "/chain.json" }

func headName(id string) string { return root + id + "/head.json" }

// Head extends a chain's coverage past its last segment while nothing was committed: an idle
// database advances the recovery point by rewriting this one small record, not by adding empty
// segments. It counts only while After is still the last segment's end.
type Head struct {
	Chain   string              `json:"chain"`
	After   LSN                 `json:"after"`   // the last segment's EndLSN (or the chain's StartLSN)
	EndLSN  LSN                 `json:"end_lsn"` // no transaction committed in [After, EndLSN)
	Until   time.Time           `json:"until"`   // every commit before it is in the segments
	Written time.Time           `json:"written"`
	Auth    []store.ManifestMAC `json:"auth,omitempty"`
}

// coverage is how far a chain's segments (and its head, if current) reach.
func coverage(ctx context.Context, repo *store.Repository, c Chain, segs []Segment) (time.Time, LSN, error) {
	at, lsn := c.BaseTime, c.StartLSN
	if n := len(segs); n > 0 {
		at, lsn = segs[n-1].Until, segs[n-1].EndLSN
	}
	h, err := readHead(ctx, repo, c.ID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return at, lsn, nil
	case err != nil:
		return at, lsn, fmt.Errorf("read the head of chain %s: %w", c.ID, err)
	}
	if h.After == lsn && h.EndLSN >= lsn && h.Until.After(at) {
		at, lsn = h.Until, h.EndLSN
	}
	return at, lsn, nil
}

func segmentName(chain string, end LSN, ext string) string {
	return fmt.Sprintf("%s%s/seg/%016X.%s", root, chain, uint64(end), ext)
}

// bodyName is where the segment's body is stored.
func (s *Segment) bodyName() string {
	if s.BodyTag == "" {
		return segmentName(s.Chain, s.EndLSN, "seg")
	}
	return fmt.Sprintf("%s%s/seg/%016X-%s.seg", root, s.Chain, uint64(s.EndLSN), s.BodyTag)
}

func newChainID(now time.Time, lsn LSN) string {
	return now.UTC().Format("20060102T150405Z") + "-" + fmt.Sprintf("%X", uint64(lsn))
}

// Damaged is a chain record that cannot be used: unreadable, not what its name says, or not
// authentic. Nothing is done with it but naming it.
type Damaged struct {
	Name  string `json:"name"`
	Error string `json:"error"`
}

// ReadChains reads every chain record: the usable ones, oldest first, and the damaged ones, so
// that one bad record never hides the others. Only a failure to reach the storage is an error.
func ReadChains(ctx context.Context, repo *store.Repository) ([]Chain, []Damaged, error) {
	var names []string
	err := repo.Backend().List(ctx, root, func(o store.ObjectInfo) error {
		if strings.HasSuffix(o.Name, "/chain.json") && strings.Count(o.Name, "/") == 2 {
			names = append(names, o.Name)
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("list point-in-time chains: %w", err)
	}
	var out []Chain
	var damaged []Damaged
	for _, n := range names {
		var c Chain
		err := getRecord(ctx, repo, n, &c)
		switch {
		case errors.Is(err, store.ErrNotFound):
			continue // removed since the listing
		case err != nil && !errors.Is(err, store.ErrUndecodable) && !errors.Is(err, errRecord):
			return nil, nil, fmt.Errorf("read point-in-time chain %s: %w", n, err)
		case err != nil:
			damaged = append(damaged, Damaged{Name: n, Error: err.Error()})
			continue
		}
		// An append-only repository records a chain's end beside it (appendonly.go).
		if err := readChainEnd(ctx, repo, &c); err != nil {
			if !errors.Is(err, store.ErrUndecodable) && !errors.Is(err, errRecord) {
				return nil, nil, fmt.Errorf("read the end of point-in-time chain %s: %w", c.ID, err)
			}
			damaged = append(damaged, Damaged{Name: chainEndName(c.ID), Error: err.Error()})
			continue
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, damaged, nil
}

// Chains lists every chain, oldest first. A damaged chain record is an error naming it: which
// chain reaches a point cannot be told while one is unknown.
func Chains(ctx context.Context, repo *store.Repository) ([]Chain, error) {
	chains, damaged, err := ReadChains(ctx, repo)
	switch {
	case err == nil && len(damaged) == 1:
		err = errors.New(damaged[0].Error)
	case err == nil && len(damaged) > 1:
		err = fmt.Errorf("%s (and %d more damaged chain records; 'tracevault verify --all' names them)", damaged[0].Error, len(damaged)-1)
	}
	return chains, err
}

func segmentRecords(ctx context.Context, repo *store.Repository, chain string) ([]string, error) {
	var names []string
	err := repo.Backend().List(ctx, root+chain+"/seg/", func(o store.ObjectInfo) error {
		if strings.HasSuffix(o.Name, ".json") {
			names = append(names, o.Name)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list segments of chain %s: %w", chain, err)
	}
	sort.Strings(names) // the names are the end LSNs in fixed-width hex
	return names, nil
}

// lastSegment is a chain's newest segment (nil before the first): what a resume needs, without
// reading every record.
func lastSegment(ctx context.Context, repo *store.Repository, chain string) ([]Segment, error) {
	names, err := segmentRecords(ctx, repo, chain)
	if err != nil || len(names) == 0 {
		return nil, err
	}
	s, err := readSegment(ctx, repo, names[len(names)-1])
	if err != nil {
		return nil, err
	}
	return []Segment{s}, nil
}

// Segments lists a chain's durable segments in LSN order, checking that they continue each other
// from the chain's start without a gap.
func Segments(ctx context.Context, repo *store.Repository, chain string) ([]Segment, error) {
	var c Chain
	if err := getRecord(ctx, repo, chainName(chain), &c); err != nil {
		return nil, fmt.Errorf("read point-in-time chain %s: %w", chain, err)
	}
	segs, broken, err := chainSegments(ctx, repo, c, nil)
	if err == nil {
		err = broken
	}
	return segs, err
}

// chainSegments reads a chain's segment records (those in cache, by name, are not read again)
// and follows them from the chain's start (followChain). broken says why the chain stops short
// of its newest record; the segments before it restore all the same.
func chainSegments(ctx context.Context, repo *store.Repository, c Chain, cache map[string]Segment) (path []Segment, broken, err error) {
	names, err := segmentRecords(ctx, repo, c.ID)
	if err != nil {
		return nil, nil, err
	}
	all := make([]Segment, 0, len(names))
	for _, n := range names {
		s, ok := cache[n]
		if !ok {
			if s, err = readSegment(ctx, repo, n); err != nil {
				return nil, nil, err
			}
			if cache != nil {
				lean := s
				lean.Sequences, lean.Auth = nil, nil
				cache[n] = lean
			}
		}
		all = append(all, s)
	}
	path, broken = followChain(c, all)
	return path, broken, nil
}

// followChain follows segments (sorted by end) from the chain's start: at each position the
// segment starting there that leads furthest. Two segments from one position are two writers
// of one slot (a stalled one that stored before it was fenced): both hold the same transactions
// up to the shorter one's end, so the longer way loses nothing. broken names the first segment
// beyond the path's end: a segment record between them is missing.
func followChain(c Chain, segs []Segment) (path []Segment, broken error) {
	byStart := map[LSN][]int{}
	for i, s := range segs {
		byStart[s.StartLSN] = append(byStart[s.StartLSN], i)
	}
	reach := make([]LSN, len(segs)) // how far a path through segs[i] goes
	for i := len(segs) - 1; i >= 0; i-- {
		reach[i] = segs[i].EndLSN
		for _, j := range byStart[segs[i].EndLSN] {
			if j > i {
				reach[i] = max(reach[i], reach[j])
			}
		}
	}
	end := c.StartLSN
	for {
		best := -1
		for _, j := range byStart[end] {
			if segs[j].EndLSN > end && (best < 0 || reach[j] > reach[best]) {
				best = j
			}
		}
		if best < 0 {
			break
		}
		path = append(path, segs[best])
		end = segs[best].EndLSN
	}
	for _, s := range segs {
		if s.EndLSN > end {
			what := "the chain before it reaches"
			if len(path) == 0 {
				what = "the chain's base is at"
			}
			return path, fmt.Errorf("chain %s: segment record %s starts at %s but %s %s: a segment record is missing; restore to a point before %s, or from another chain",
				c.ID, segmentName(c.ID, s.EndLSN, "json"), s.StartLSN, what, end, end)
		}
	}
	return path, nil
}

// RecoveryPoint is the latest moment a restore can reach: the newest chain's newest segment
// (or its base, before the first segment).
type RecoveryPoint struct {
	Chain string    `json:"chain"`
	Time  time.Time `json:"time"`
	LSN   LSN       `json:"lsn"`
}

// Latest finds the recovery point; ok is false when no chain exists.
func Latest(ctx context.Context, repo *store.Repository) (rp RecoveryPoint, ok bool, err error) {
	chains, err := Chains(ctx, repo)
	if err != nil || len(chains) == 0 {
		return rp, false, err
	}
	c := chains[len(chains)-1]
	rp = RecoveryPoint{Chain: c.ID, Time: c.BaseTime, LSN: c.StartLSN}
	segs, err := lastSegment(ctx, repo, c.ID)
	if err != nil {
		return rp, true, err
	}
	rp.Time, rp.LSN, err = coverage(ctx, repo, c, segs)
	return rp, true, err
}

var errNoChain = errors.New("no point-in-time recovery chain in the repository")
