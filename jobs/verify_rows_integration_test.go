package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/tracevault/tracevault/internal/devstack"
	"github.com/tracevault/tracevault/snapshot"
	"github.com/tracevault/tracevault/snapshot/clickhouse"
	"github.com/tracevault/tracevault/snapshot/store"
)

// TestVerifyHoldsLogicalObjectsToTheirRows: a snapshot that reuses a logical partition object
// while recording other rows for it (what a 0-byte export, stored before exports were held to
// their partition's rows, left in repositories) is named by verify --read-data, though the
// object's SHA-256 is right and the snapshot that stored it, which records its true rows, is
// clean. A restore of it would be refused; verify must say so first.
func TestVerifyHoldsLogicalObjectsToTheirRows(t *testing.T) {
	env := devstack.Require(t)
	ctx := context.Background()
	db := env.CHDatabase(t, "it_vrows")
	for _, q := range []string{
		fmt.Sprintf("CREATE TABLE %s.t (d Date, id UInt64, s String) ENGINE = MergeTree PARTITION BY toYYYYMM(d) ORDER BY id", db),
		fmt.Sprintf("INSERT INTO %s.t SELECT toDate('2026-01-01') + number %% 28, number, toString(number) FROM system.numbers LIMIT 972", db),
	} {
		if err := env.CHExec(0, q); err != nil {
			t.Fatal(err)
		}
	}
	repo, err := store.Open(ctx, store.Options{URL: "file://" + t.TempDir(), Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	src := &clickhouse.Source{Native: []string{env.CHNative[0]}, HTTP: []string{env.CHHTTP[0]}, Conn: clickhouse.ConnOptions{User: "default"},
		Filter: clickhouse.Filter{Databases: []string{db}}, Mode: clickhouse.ModeLogical, Log: quiet}
	m, err := snapshot.Run(ctx, repo, []snapshot.Source{src}, snapshot.Options{Log: quiet})
	if err != nil {
		t.Fatalf("logical backup: %v", err)
	}
	// A later snapshot naming the same object with other rows, as the reusing one did.
	forged := *m
	forged.ID = m.ID[:len(m.ID)-1] + "f"
	forged.Objects = nil
	for _, o := range m.Objects {
		o.Rows = 972 + 1
		forged.Objects = append(forged.Objects, o)
	}
	var sec map[string]any
	if err := json.Unmarshal(m.Sections["clickhouse"], &sec); err != nil {
		t.Fatal(err)
	}
	for _, tb := range sec["tables"].([]any) {
		for _, p := range tb.(map[string]any)["partitions"].([]any) {
			p.(map[string]any)["rows"] = 972 + 1
		}
	}
	raw, err := json.Marshal(sec)
	if err != nil {
		t.Fatal(err)
	}
	forged.Sections = map[string]json.RawMessage{"clickhouse": raw}
	if err := repo.CommitManifest(ctx, &forged); err != nil {
		t.Fatal(err)
	}

	rep, err := repo.VerifyWith(ctx, nil, store.VerifyOptions{ReadData: true, Content: ContentChecks})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) != 1 || rep.Problems[0].Snapshot != forged.ID ||
		!strings.Contains(rep.Problems[0].Error, "holds 972 rows where the snapshot records 973") {
		t.Fatalf("problems %+v: want one, the forged snapshot's, naming 972 rows held and 973 recorded", rep.Problems)
	}
	if rep.Objects != len(m.Objects) {
		t.Errorf("verify counted %d objects; the repository holds %d", rep.Objects, len(m.Objects))
	}
}
