package pitr

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/tracevault/tracevault/internal/devstack"
	"github.com/tracevault/tracevault/snapshot/postgres"
	"github.com/tracevault/tracevault/snapshot/store"
)

// trustRepo opens a fresh repository on the stack's Azurite or the filesystem, encrypted to a
// new X25519 identity or plaintext.
func trustRepo(t *testing.T, backend string, encrypted bool) *store.Repository {
	t.Helper()
	ctx := context.Background()
	opts := store.Options{URL: "file://" + t.TempDir(), Log: quiet}
	if backend == "azurite" {
		env := devstack.Require(t)
		name := strings.ReplaceAll(strings.ToLower(devstack.ScratchName("pitr")), "_", "-")
		opts.URL, opts.ConnectionString = "azblob://"+name+"/repo", env.AzureConnectionString
		t.Cleanup(func() {
			if c, err := container.NewClientFromConnectionString(env.AzureConnectionString, name, nil); err == nil {
				_, _ = c.Delete(context.Background(), nil)
			}
		})
	}
	if encrypted {
		id, err := age.GenerateX25519Identity()
		if err != nil {
			t.Fatal(err)
		}
		opts.IdentityFile = filepath.Join(t.TempDir(), "key.txt")
		if err := os.WriteFile(opts.IdentityFile, []byte(id.String()+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		opts.Recipients = []string{id.Recipient().String()}
	}
	repo, err := store.Open(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	return repo
}

// fixtureChain writes what the streamer writes, through the same record functions: a complete
// pitr-base snapshot, the chain record, n segments of one transaction each and a head.
func fixtureChain(t *testing.T, repo *store.Repository, id string, created time.Time, start LSN, n int, ended bool) Chain {
	t.Helper()
	ctx := context.Background()
	m := &store.Manifest{ID: fixtureBase(id, created), Start: created, End: created.Add(time.Second),
		Status: store.StatusComplete, Tags: []string{store.TagPITRBase}}
	if err := repo.CommitManifest(ctx, m); err != nil {
		t.Fatal(err)
	}
	c := Chain{ID: id, Database: "langfuse", Slot: "tracevault", Publication: "tracevault", Schemas: []string{"public"},
		Base: m.ID, StartLSN: start, BaseTime: created, Created: created}
	if ended {
		c.Ended, c.EndReason = created.Add(time.Hour), "schema change"
	}
	if err := putRecord(ctx, repo, chainName(id), &c); err != nil {
		t.Fatal(err)
	}
	body := encode(t, sampleRecords())
	end := start
	for i := range n {
		s := Segment{Chain: id, StartLSN: end, EndLSN: end + 0x100, Until: created.Add(time.Duration(i+1) * time.Minute),
			Transactions: 1, Changes: 4, Sequences: []postgres.Sequence{{Schema: "public", Name: "items_id_seq", LastValue: int64(i), IsCalled: true}},
			Written: created.Add(time.Duration(i+1) * time.Minute)}
		ref, err := repo.PutNamed(ctx, segmentName(id, s.EndLSN, "seg"), bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		s.Object = ref
		if err := putRecord(ctx, repo, segmentName(id, s.EndLSN, "json"), &s); err != nil {
			t.Fatal(err)
		}
		end = s.EndLSN
	}
	h := Head{Chain: id, After: end, EndLSN: end + 0x10, Until: created.Add(time.Duration(n+1) * time.Minute), Written: created}
	if err := putRecord(ctx, repo, headName(id), &h); err != nil {
		t.Fatal(err)
	}
	return c
}

// rawCopy copies stored bytes as they are: what anyone who can write the repository can do.
func rawCopy(t *testing.T, repo *store.Repository, from, to string) {
	t.Helper()
	ctx := context.Background()
	rc, err := repo.Backend().Get(ctx, from, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Backend().Put(ctx, to, bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
}

// forge rewrites a record's plaintext through the codec: encrypting needs only the recipient,
// a public key, so someone without the identity can do it.
func forge(t *testing.T, repo *store.Repository, name string, edit func([]byte) []byte) {
	t.Helper()
	ctx := context.Background()
	var raw json.RawMessage
	if err := repo.GetJSON(ctx, name, &raw); err != nil {
		t.Fatal(err)
	}
	if err := repo.PutJSON(ctx, name, json.RawMessage(edit(raw))); err != nil {
		t.Fatal(err)
	}
}

// TestPITRRecordTrust: every record of a chain is refused, by restore (its plan) and by verify,
// naming it, once someone without the keys forged, altered, swapped or copied it, or a segment
// is missing or damaged; an untouched chain plans and verifies clean with its data read.
func TestPITRRecordTrust(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	const a, b = "20261127T100000Z-1000000", "20261127T100000Z-2000000"
	seg := func(chain string, i int) string { return segmentName(chain, LSN(0x1000000+0x100*i), "json") }
	body := func(chain string, i int) string { return segmentName(chain, LSN(0x1000000+0x100*i), "seg") }
	cases := []struct {
		name string
		// plaintext: a plaintext repository refuses it too (it contradicts its name or the chain);
		// otherwise only the MAC tells.
		plaintext bool
		tamper    func(t *testing.T, repo *store.Repository)
		// restore and verify must fail naming object with why; restore "" plans fine.
		object, restore, verify string
		others                  []string // verify may name these too
		readOnly                bool     // only verify --read-data finds it
		azurite                 bool     // also on Azurite (the rules do not depend on the backend)
	}{
		{name: "untouched", azurite: true},
		{name: "edited byte in a segment record", azurite: true, tamper: func(t *testing.T, repo *store.Repository) {
			forge(t, repo, seg(a, 2), func(b []byte) []byte { return bytes.Replace(b, []byte(`"changes":4`), []byte(`"changes":5`), 1) })
		}, object: seg(a, 2), restore: "no MAC verifies", verify: "no MAC verifies"},
		{name: "segment records swapped", plaintext: true, tamper: func(t *testing.T, repo *store.Repository) {
			tmp := "pitr/tmp.json"
			rawCopy(t, repo, seg(a, 2), tmp)
			rawCopy(t, repo, seg(a, 3), seg(a, 2))
			rawCopy(t, repo, tmp, seg(a, 3))
			if err := repo.Backend().Delete(context.Background(), tmp); err != nil {
				t.Fatal(err)
			}
		}, object: seg(a, 2), restore: "refused", verify: "refused", others: []string{seg(a, 3)}},
		{name: "record from another chain", azurite: true, plaintext: true, tamper: func(t *testing.T, repo *store.Repository) {
			rawCopy(t, repo, seg(b, 2), seg(a, 2))
		}, object: seg(a, 2), restore: "refused", verify: "refused"},
		{name: "record from another chain, made to name this one", tamper: func(t *testing.T, repo *store.Repository) {
			rawCopy(t, repo, seg(b, 2), seg(a, 2))
			forge(t, repo, seg(a, 2), func(x []byte) []byte { return bytes.ReplaceAll(x, []byte(b), []byte(a)) })
		}, object: seg(a, 2), restore: "no MAC verifies", verify: "no MAC verifies"},
		{name: "old-format record without MAC", tamper: func(t *testing.T, repo *store.Repository) {
			var s Segment
			if err := repo.GetJSON(context.Background(), seg(a, 2), &s); err != nil {
				t.Fatal(err)
			}
			s.Auth = nil
			if err := repo.PutJSON(context.Background(), seg(a, 2), s); err != nil {
				t.Fatal(err)
			}
		}, object: seg(a, 2), restore: "before point-in-time records were authenticated", verify: "before point-in-time records were authenticated"},
		{name: "chain record altered", tamper: func(t *testing.T, repo *store.Repository) {
			forge(t, repo, chainName(a), func(x []byte) []byte {
				return bytes.Replace(x, []byte(`"slot":"tracevault"`), []byte(`"slot":"tracevaulx"`), 1)
			})
		}, object: chainName(a), restore: "no MAC verifies", verify: "no MAC verifies"},
		{name: "head moved forward", tamper: func(t *testing.T, repo *store.Repository) {
			forge(t, repo, headName(a), func(x []byte) []byte {
				return bytes.Replace(x, []byte(`"until":"2026-11-27T10:05`), []byte(`"until":"2026-11-27T10:55`), 1)
			})
		}, object: headName(a), restore: "no MAC verifies", verify: "no MAC verifies"},
		{name: "missing segment", azurite: true, plaintext: true, tamper: func(t *testing.T, repo *store.Repository) {
			for _, n := range []string{seg(a, 2), body(a, 2)} {
				if err := repo.Backend().Delete(context.Background(), n); err != nil {
					t.Fatal(err)
				}
			}
		}, object: seg(a, 3), restore: "a segment record is missing", verify: "a segment between them is missing"},
		{name: "missing first segment (gap after the base)", plaintext: true, tamper: func(t *testing.T, repo *store.Repository) {
			for _, n := range []string{seg(a, 1), body(a, 1)} {
				if err := repo.Backend().Delete(context.Background(), n); err != nil {
					t.Fatal(err)
				}
			}
		}, object: seg(a, 2), restore: "the chain's base is at 0/1000000", verify: "a segment between them is missing"},
		{name: "missing segment body", plaintext: true, tamper: func(t *testing.T, repo *store.Repository) {
			if err := repo.Backend().Delete(context.Background(), body(a, 3)); err != nil {
				t.Fatal(err)
			}
		}, object: body(a, 3), verify: "not found"},
		{name: "damaged segment byte", azurite: true, plaintext: true, readOnly: true, tamper: func(t *testing.T, repo *store.Repository) {
			ctx := context.Background()
			rc, err := repo.Backend().Get(ctx, body(a, 3), 0, -1)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(rc)
			rc.Close()
			raw[len(raw)-20] ^= 0x40
			if _, err := repo.Backend().Put(ctx, body(a, 3), bytes.NewReader(raw)); err != nil {
				t.Fatal(err)
			}
		}, object: body(a, 3), verify: body(a, 3)},
		{name: "segment body replaced with valid other content", plaintext: true, readOnly: true, tamper: func(t *testing.T, repo *store.Repository) {
			recs := sampleRecords()
			recs[2].New[0].Data = []byte("z")
			if _, err := repo.PutNamed(context.Background(), body(a, 3), bytes.NewReader(encode(t, recs))); err != nil {
				t.Fatal(err)
			}
		}, object: body(a, 3), verify: "sha256"},
	}
	for _, backend := range []string{"fs", "azurite"} {
		for _, encrypted := range []bool{true, false} {
			for _, tc := range cases {
				if (!encrypted && !tc.plaintext && tc.object != "") || (backend == "azurite" && (!tc.azurite || !encrypted)) {
					continue
				}
				mode := map[bool]string{true: "encrypted", false: "plaintext"}[encrypted]
				t.Run(backend+"/"+mode+"/"+tc.name, func(t *testing.T) {
					ctx := context.Background()
					repo := trustRepo(t, backend, encrypted)
					fixtureChain(t, repo, a, t0, 0x1000000, 4, false)
					fixtureChain(t, repo, b, t0.Add(-time.Hour), 0x1000000, 4, true)
					if tc.tamper != nil {
						tc.tamper(t, repo)
					}
					_, err := PlanRestore(ctx, repo, Target{Time: t0.Add(4*time.Minute + 30*time.Second)})
					switch {
					case tc.restore == "" && err != nil:
						t.Fatalf("restore refused: %v", err)
					case tc.restore != "" && (err == nil || !strings.Contains(err.Error(), tc.object) || !strings.Contains(err.Error(), tc.restore)):
						t.Fatalf("restore: got %v, want an error naming %s: %s", err, tc.object, tc.restore)
					}
					for _, readData := range []bool{false, true} {
						rep, err := Verify(ctx, repo, VerifyOptions{ReadData: readData})
						if err != nil {
							t.Fatal(err)
						}
						if rep.Chains != 2 && !strings.Contains(tc.object, "chain.json") {
							t.Errorf("verify checked %d chains, want 2", rep.Chains)
						}
						want := tc.object != "" && (readData || !tc.readOnly)
						found := false
						for _, p := range rep.Problems {
							if p.Object == tc.object && strings.Contains(p.Error, tc.verify) {
								found = true
							} else if !want || (p.Object != tc.object && !slices.Contains(tc.others, p.Object)) {
								t.Errorf("verify (read data %v): unexpected problem %+v", readData, p)
							}
						}
						if found != want {
							t.Errorf("verify (read data %v): problem on %s (%s) found %v, want %v; problems %+v", readData, tc.object, tc.verify, found, want, rep.Problems)
						}
						if readData && rep.SegmentsRead == 0 {
							t.Errorf("verify --read-data read no segment")
						}
					}
				})
			}
		}
	}
}

// TestPITRPrune: a chain goes with its base; a chain whose base is kept stays whole; the newest
// chain's base is kept whatever the rules (even when a newer pitr-base has no chain record);
// a dry run lists what would go and removes nothing; a directory an interrupted prune left goes.
func TestPITRPrune(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	const old, cur = "20261127T080000Z-1000000", "20261127T100000Z-2000000"
	cases := []struct {
		name     string
		keepLast int
		setup    func(t *testing.T, repo *store.Repository)
		dryRun   bool
		removed  []string // chains removed
		survive  []string // chains that must restore whole
	}{
		{name: "old base forgotten", keepLast: 1, removed: []string{old}, survive: []string{cur}},
		{name: "dry run", keepLast: 1, dryRun: true, removed: []string{old}, survive: []string{old, cur}},
		{name: "both bases kept", keepLast: 2, survive: []string{old, cur}},
		{name: "newer base without chain record", keepLast: 1, setup: func(t *testing.T, repo *store.Repository) {
			at := t0.Add(time.Hour)
			m := &store.Manifest{ID: at.Format("20060102T150405Z") + "-abcdef", Start: at, End: at, Status: store.StatusComplete, Tags: []string{store.TagPITRBase}}
			if err := repo.CommitManifest(context.Background(), m); err != nil {
				t.Fatal(err)
			}
		}, removed: []string{old}, survive: []string{cur}},
		{name: "leftover of an interrupted prune", keepLast: 2, setup: func(t *testing.T, repo *store.Repository) {
			if _, err := repo.PutNamed(context.Background(), segmentName("20261127T060000Z-500", 0x600, "seg"), strings.NewReader("x")); err != nil {
				t.Fatal(err)
			}
		}, removed: []string{"20261127T060000Z-500"}, survive: []string{old, cur}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			repo := trustRepo(t, "azurite", true)
			fixtureChain(t, repo, old, t0.Add(-2*time.Hour), 0x1000000, 3, true)
			fixtureChain(t, repo, cur, t0, 0x2000000, 3, false)
			if tc.setup != nil {
				tc.setup(t, repo)
			}
			pins, err := Pins(ctx, repo)
			if err != nil {
				t.Fatal(err)
			}
			rep, err := repo.Prune(ctx, store.Retention{KeepLast: tc.keepLast, Pin: pins}, tc.dryRun, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			removed, _, err := Prune(ctx, repo, rep.Kept, tc.dryRun)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range removed {
				got = append(got, r.Chain)
				if !r.Leftover && (r.Segments != 3 || r.Files != 8) {
					t.Errorf("chain %s: %d segments, %d files listed; want 3 and 8 (chain, head, 3 records, 3 bodies)", r.Chain, r.Segments, r.Files)
				}
			}
			if strings.Join(got, ",") != strings.Join(tc.removed, ",") {
				t.Fatalf("removed %v, want %v", got, tc.removed)
			}
			for _, id := range tc.survive {
				segs, err := Segments(ctx, repo, id)
				if err != nil || len(segs) != 3 {
					t.Errorf("chain %s after prune: %d segments, %v", id, len(segs), err)
				}
			}
			if !tc.dryRun {
				for _, id := range tc.removed {
					var left []string
					_ = repo.Backend().List(ctx, root+id+"/", func(o store.ObjectInfo) error { left = append(left, o.Name); return nil })
					if len(left) > 0 {
						t.Errorf("chain %s removed, but %v remain", id, left)
					}
				}
			}
			// The newest restorable point is untouched: its base restores and its segments verify.
			rp, ok, err := Latest(ctx, repo)
			if err != nil || !ok || rp.Chain != cur {
				t.Fatalf("latest after prune: %+v %v %v", rp, ok, err)
			}
			if _, err := repo.Snapshot(ctx, fixtureBase(cur, t0)); err != nil {
				t.Fatalf("newest chain's base: %v", err)
			}
			v, err := Verify(ctx, repo, VerifyOptions{ReadData: true})
			if err != nil || len(v.Problems) > 0 {
				t.Fatalf("verify after prune: %v %+v", err, v.Problems)
			}
		})
	}
}

func fixtureBase(id string, created time.Time) string {
	return created.Format("20060102T150405Z") + "-" + id[len(id)-6:]
}

// TestPITREncryptedLive: a real stream into an encrypted repository writes records that
// authenticate: they resume, verify with every segment read, and restore to a ledger point; the
// same restore is refused, naming the record, once one of them is altered without the keys.
func TestPITREncryptedLive(t *testing.T) {
	env := devstack.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	dsn := env.PGDatabase(t, "it_pitr_enc")
	slot := testSlot(t, env, "tv_enc")
	repo := trustRepo(t, "fs", true)
	conn := workloadConn(ctx, t, dsn, `INSERT INTO public.items (k, v) SELECT g, 'seed' FROM generate_series(1, 50) g`)
	w := &writer{t: t, conn: conn, rnd: rand.New(rand.NewPCG(3, 4))}
	if err := conn.QueryRow(ctx, "SELECT array_agg(id) FROM public.items").Scan(&w.ids); err != nil {
		t.Fatal(err)
	}
	var events []string
	var mu sync.Mutex
	r := start(t, repo, dsn, slot, &events, &mu)
	waitChain(t, repo, r)
	for range 10 {
		w.step(ctx)
	}
	// Stopped and started again: the resume reads (and so authenticates) the last record.
	waitCovered(t, repo, r, w.ledger[len(w.ledger)-1].at)
	r.kill(t)
	r = start(t, repo, dsn, slot, &events, &mu)
	for range 10 {
		w.step(ctx)
	}
	target := w.ledger[len(w.ledger)-1]
	waitCovered(t, repo, r, target.at)
	r.kill(t)

	rep, err := Verify(ctx, repo, VerifyOptions{ReadData: true})
	if err != nil || len(rep.Problems) > 0 || rep.Chains != 1 || rep.SegmentsRead == 0 || rep.SegmentsRead != rep.Segments {
		t.Fatalf("verify: %+v, %v", rep, err)
	}
	restoreAndCheck(t, env, repo, dsn, Target{Time: target.at}, target)

	chains, err := Chains(ctx, repo)
	if err != nil {
		t.Fatal(err)
	}
	names, err := segmentRecords(ctx, repo, chains[0].ID)
	if err != nil || len(names) == 0 {
		t.Fatalf("segment records: %v %v", names, err)
	}
	forge(t, repo, names[0], func(b []byte) []byte {
		return bytes.Replace(b, []byte(`"transactions":`), []byte(`"transactions":1`), 1)
	})
	_, err = Restore(ctx, repo, RestoreOptions{DSN: dsn, Database: devstack.ScratchName("it_pitr_never"), Log: quiet}, Target{Time: target.at})
	if err == nil || !strings.Contains(err.Error(), names[0]) || !strings.Contains(err.Error(), "no MAC verifies") {
		t.Fatalf("restore through an altered record: %v; want it refused naming %s", err, names[0])
	}
}
