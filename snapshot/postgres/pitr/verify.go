package pitr

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/tracevault/tracevault/snapshot/store"
)

// VerifyOptions say which chains Verify checks and how deep.
type VerifyOptions struct {
	// Bases limits the check to the chains of these base snapshots; nil checks every chain.
	Bases map[string]bool
	// ReadData reads every segment through the codec and the segment parser; with a Sample
	// bucket (1-based, 0 = all) only the segments in it, as store's verify does with objects.
	ReadData bool
	Sample   store.Sample
	Bucket   int
}

// VerifyReport is what Verify found of the chains.
type VerifyReport struct {
	Chains       int                   `json:"chains"`
	Segments     int                   `json:"segments"`
	SegmentsRead int                   `json:"segments_read"`
	BytesRead    int64                 `json:"bytes_read"`
	Problems     []store.VerifyProblem `json:"problems,omitempty"`
}

const verifyFix = "a restore to a point after it uses another chain or the base snapshot alone; if the stream is running, the next chain (a schema change, a lost slot) starts whole"

// Verify checks the point-in-time chains: every record authentic and where its name says, the
// base snapshot present, the segments continuous from the base's LSN without a gap, each
// segment's body stored with its recorded size, and with ReadData its checksum and every record
// in it (CRC-32C trailer included). Each problem names the record or segment.
func Verify(ctx context.Context, repo *store.Repository, opts VerifyOptions) (VerifyReport, error) {
	var rep VerifyReport
	chains, damaged, err := ReadChains(ctx, repo)
	if err != nil {
		return rep, err
	}
	if opts.Bases == nil {
		for _, d := range damaged {
			rep.Problems = append(rep.Problems, store.VerifyProblem{Object: d.Name, What: "point-in-time chain record", Error: d.Error, Fix: verifyFix})
		}
	}
	cat, err := repo.Catalog(ctx)
	if err != nil {
		return rep, err
	}
	snaps := map[string]bool{}
	for _, m := range cat.Snapshots {
		snaps[m.ID] = true
	}
	for _, c := range chains {
		if opts.Bases != nil && !opts.Bases[c.Base] {
			continue
		}
		rep.Chains++
		if !snaps[c.Base] {
			rep.Problems = append(rep.Problems, store.VerifyProblem{Snapshot: c.Base, Object: chainName(c.ID), What: "point-in-time chain",
				Error: fmt.Sprintf("its base snapshot %s is not in the repository (pruned or damaged), so the chain cannot restore", c.Base), Fix: "prune removes the chain once its base is gone"})
		}
		if err := verifyChain(ctx, repo, c, opts, &rep); err != nil {
			return rep, err
		}
	}
	return rep, ctx.Err()
}

func verifyChain(ctx context.Context, repo *store.Repository, c Chain, opts VerifyOptions, rep *VerifyReport) error {
	names, err := segmentRecords(ctx, repo, c.ID)
	if err != nil {
		return err
	}
	problem := func(object, what string, err error) {
		rep.Problems = append(rep.Problems, store.VerifyProblem{Snapshot: c.Base, Object: object, What: what, Error: err.Error(), Fix: verifyFix})
	}
	var readable []Segment
	unreadable := false
	for _, n := range names {
		rep.Segments++
		s, err := readSegment(ctx, repo, n)
		if err != nil {
			if !errors.Is(err, errRecord) && !errors.Is(err, store.ErrUndecodable) {
				return err
			}
			problem(n, "point-in-time segment record of chain "+c.ID, err)
			unreadable = true
			continue
		}
		readable = append(readable, s)
		what := fmt.Sprintf("point-in-time segment %s..%s of chain %s", s.StartLSN, s.EndLSN, c.ID)
		body := s.bodyName()
		info, err := repo.Backend().Stat(ctx, body)
		switch {
		case err != nil:
			problem(body, what, err)
			continue
		case info.Size != s.Object.Size:
			problem(body, what, fmt.Errorf("stored size %d, its record says %d", info.Size, s.Object.Size))
			continue
		}
		if !opts.ReadData || (opts.Bucket != 0 && !opts.Sample.Holds(body, opts.Bucket)) {
			continue
		}
		rep.SegmentsRead++
		if err := readSegmentBody(ctx, repo, body, s.Object, &rep.BytesRead); err != nil {
			problem(body, what, err)
		}
	}
	path, broken := followChain(c, readable)
	onPath := map[LSN]bool{}
	for _, s := range path {
		onPath[s.EndLSN] = true
	}
	for _, s := range readable {
		if !onPath[s.EndLSN] && s.EndLSN <= pathEnd(c, path) {
			problem(segmentName(c.ID, s.EndLSN, "json"), fmt.Sprintf("point-in-time segment %s..%s of chain %s", s.StartLSN, s.EndLSN, c.ID),
				fmt.Errorf("a second segment from %s, beside the one the chain continues with: a streamer that stalled while another took the slot stored it (before writers were fenced); restores ignore it, and removing it (its .json and .seg) is safe", s.StartLSN))
		}
	}
	// A record that cannot be read is already named: the gap it leaves is not named again.
	if end := pathEnd(c, path); broken != nil && !unreadable {
		for _, s := range readable {
			if s.EndLSN > end {
				problem(segmentName(c.ID, s.EndLSN, "json"), fmt.Sprintf("point-in-time segment %s..%s of chain %s", s.StartLSN, s.EndLSN, c.ID),
					fmt.Errorf("it starts at %s but the chain before it reaches %s: a segment between them is missing, so nothing after %s can be restored from this chain", s.StartLSN, end, end))
				break
			}
		}
	}
	var last []Segment
	if n := len(path); n > 0 && broken == nil {
		last = path[n-1:]
	}
	if _, _, err := coverage(ctx, repo, c, last); err != nil {
		problem(headName(c.ID), "point-in-time head of chain "+c.ID, err)
	}
	return nil
}

// readSegmentBody reads a stored segment through the codec (its checksum is compared at the end)
// and the segment parser (every record, the trailer's CRC-32C).
func readSegmentBody(ctx context.Context, repo *store.Repository, name string, ref store.ObjectRef, read *int64) error {
	body, err := repo.OpenNamed(ctx, name, ref)
	if err != nil {
		return err
	}
	defer body.Close()
	cr := &store.CountingReader{R: body}
	rd, err := NewSegmentReader(cr)
	if err == nil {
		for {
			if _, err = rd.Next(); err != nil {
				break
			}
		}
		if errors.Is(err, io.EOF) {
			err = nil
		}
	}
	// The codec's checksum is compared only once the body is read to its end; its error says
	// more than the parser's (the stored bytes changed), so it comes first.
	_, cerr := io.Copy(io.Discard, cr)
	*read += cr.N
	if cerr != nil {
		return cerr
	}
	return err
}

// pathEnd is where a chain's continuous segments reach.
func pathEnd(c Chain, path []Segment) LSN {
	if n := len(path); n > 0 {
		return path[n-1].EndLSN
	}
	return c.StartLSN
}
