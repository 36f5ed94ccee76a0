package clickhouse

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/tracevault/tracevault/snapshot/store"
)

func TestInPartition(t *testing.T) {
	for _, tt := range []struct {
		name string
		p    Partition
		want string
	}{
		{"parts named by the id: read only them", Partition{ID: "202401", Parts: []string{"202401_1_5_1", "202401_6_6_0"}},
			"_partition_id = '202401' AND startsWith(_part, '202401_')"},
		{"old syntax, parts named by dates", Partition{ID: "202401", Parts: []string{"20240105_20240131_1_1_0"}}, "_partition_id = '202401'"},
		{"one part not named by the id", Partition{ID: "202401", Parts: []string{"202401_1_1_0", "20240105_20240105_2_2_0"}}, "_partition_id = '202401'"},
		{"no parts listed", Partition{ID: "all"}, "_partition_id = 'all'"},
		{"quotes stay quoted", Partition{ID: "a'b", Parts: []string{"a'b_1_1_0"}}, `_partition_id = 'a\'b' AND startsWith(_part, 'a\'b_')`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := InPartition(tt.p); got != tt.want {
				t.Errorf("InPartition(%+v) = %s, want %s", tt.p, got, tt.want)
			}
		})
	}
}

func TestPatchPartitionOf(t *testing.T) {
	for _, tt := range []struct {
		id, want string
		ok       bool
	}{
		{"patch-9834becdf7e2e15ad7c410ffd6a5a63c-202605", "202605", true},
		{"patch-f18f7271629a324b0d26b6ad0b83a6c2-all", "all", true},
		{"patch-f18f7271629a324b0d26b6ad0b83a6c2-202605-3", "202605-3", true}, // a tuple key's id holds dashes
		{"202605", "", false},
		{"202605-3", "", false},
		{"patch-202605", "", false},                  // no hash
		{"patch--202605", "", false},                 // an empty hash
		{"patch-9834becdf7e2e15a-", "", false},       // no partition
		{"patch-not_hex!-202605", "", false},         // not a hash
		{"Patch-9834becdf7e2e15a-202605", "", false}, // the server spells it in lower case
	} {
		got, ok := PatchPartitionOf(tt.id)
		if got != tt.want || ok != tt.ok {
			t.Errorf("PatchPartitionOf(%q) = %q, %v; want %q, %v", tt.id, got, ok, tt.want, tt.ok)
		}
	}
}

// TestGroupPatches: the listing's patch partitions fold into the partitions whose rows they
// update, with their names, contents and bytes but not their rows; a patch partition of a
// partition without parts is left out; each partition with patch parts or a lightweight delete
// has its visible rows counted. A server without patch parts groups nothing.
func TestGroupPatches(t *testing.T) {
	listed := []listedPartition{
		{Partition: Partition{ID: "202605", Partition: "202605", Parts: []string{"202605_2_2_0", "202605_1_1_1"}, Rows: 1000, Bytes: 100, content: []string{"202605_1_1_1 a", "202605_2_2_0 b"}, written: 10}},
		{Partition: Partition{ID: "202606", Partition: "202606", Parts: []string{"202606_3_3_0"}, Rows: 500, Bytes: 50, content: []string{"202606_3_3_0 c"}, written: 11}},
		{Partition: Partition{ID: "202607", Partition: "202607", Parts: []string{"202607_4_4_0_9"}, Rows: 10, Bytes: 5, content: []string{"202607_4_4_0_9 d"}, written: 12}, deletes: true},
		{Partition: Partition{ID: "patch-9834becdf7e2e15ad7c410ffd6a5a63c-202605", Partition: "patch-9834becdf7e2e15ad7c410ffd6a5a63c-202605",
			Parts: []string{"patch-9834becdf7e2e15ad7c410ffd6a5a63c-202605_8_8_0_7", "patch-9834becdf7e2e15ad7c410ffd6a5a63c-202605_4_4_0_3"}, Rows: 200, Bytes: 7,
			content: []string{"patch-9834becdf7e2e15ad7c410ffd6a5a63c-202605_4_4_0_3 e", "patch-9834becdf7e2e15ad7c410ffd6a5a63c-202605_8_8_0_7 f"}, written: 20}},
		{Partition: Partition{ID: "patch-f18f7271629a324b0d26b6ad0b83a6c2-202605", Parts: []string{"patch-f18f7271629a324b0d26b6ad0b83a6c2-202605_6_6_0_5"}, Rows: 100, Bytes: 3,
			content: []string{"patch-f18f7271629a324b0d26b6ad0b83a6c2-202605_6_6_0_5 g"}, written: 15}, deletes: true},
		{Partition: Partition{ID: "patch-f18f7271629a324b0d26b6ad0b83a6c2-202604", Parts: []string{"patch-f18f7271629a324b0d26b6ad0b83a6c2-202604_1_1_0_1"}, Rows: 5, Bytes: 1}},
	}
	got, recount := groupPatches(listed, true)
	want := []Partition{
		{ID: "202605", Partition: "202605", Parts: []string{"202605_1_1_1", "202605_2_2_0"}, Rows: 1000, Bytes: 110,
			Patches: []string{"patch-9834becdf7e2e15ad7c410ffd6a5a63c-202605_4_4_0_3", "patch-9834becdf7e2e15ad7c410ffd6a5a63c-202605_8_8_0_7", "patch-f18f7271629a324b0d26b6ad0b83a6c2-202605_6_6_0_5"},
			content: []string{"202605_1_1_1 a", "202605_2_2_0 b", "patch-9834becdf7e2e15ad7c410ffd6a5a63c-202605_4_4_0_3 e", "patch-9834becdf7e2e15ad7c410ffd6a5a63c-202605_8_8_0_7 f", "patch-f18f7271629a324b0d26b6ad0b83a6c2-202605_6_6_0_5 g"},
			written: 20, visible: 1000},
		{ID: "202606", Partition: "202606", Parts: []string{"202606_3_3_0"}, Rows: 500, Bytes: 50, content: []string{"202606_3_3_0 c"}, written: 11, visible: 500},
		{ID: "202607", Partition: "202607", Parts: []string{"202607_4_4_0_9"}, Rows: 10, Bytes: 5, content: []string{"202607_4_4_0_9 d"}, written: 12, visible: 10},
	}
	if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
		t.Errorf("grouped:\n%+v\nwant\n%+v", got, want)
	}
	if fmt.Sprint(recount) != "[0 2]" {
		t.Errorf("partitions whose visible rows are counted: %v; want [0 2] (202605 with patch parts, 202607 with a delete)", recount)
	}

	// Without patch parts, an id is an id.
	plain, _ := groupPatches(listed[:2], false)
	if len(plain) != 2 || plain[0].Patches != nil || plain[0].Bytes != 100 {
		t.Errorf("a server without patch parts: %+v", plain)
	}
}

// TestFingerprintSeesPatchParts: a patch part appearing, or one merged into another, changes the
// partition's fingerprint; a partition without patch parts keeps the fingerprint it had before
// they were counted (its objects are reused after the upgrade).
func TestFingerprintSeesPatchParts(t *testing.T) {
	tbl := Table{Database: "d", Name: "events_full", Engine: "ReplacingMergeTree", UUID: "u"}
	cols := []string{"id UInt64"}
	p := Partition{ID: "202605", Parts: []string{"202605_1_1_1"}, Rows: 1000, visible: 1000, content: []string{"202605_1_1_1 a"}}
	// As the code before patch parts computed it.
	if got, want := Fingerprint(tbl, cols, p, "r"), "ab02328a57c02cc6499ec295b33b31b912701d58f40806e6f95ac1407d6dd11e"; got != want {
		t.Errorf("fingerprint of a partition without patch parts %s; want %s, as before patch parts were counted", got, want)
	}
	one := p
	one.Patches = []string{"patch-9834becdf7e2e15ad7c410ffd6a5a63c-202605_4_4_0_3"}
	merged := p
	merged.Patches = []string{"patch-9834becdf7e2e15ad7c410ffd6a5a63c-202605_4_8_1_7"}
	seen := map[string]string{}
	for name, q := range map[string]Partition{"no patch parts": p, "one patch part": one, "patch parts merged": merged} {
		f := Fingerprint(tbl, cols, q, "r")
		if other, ok := seen[f]; ok {
			t.Errorf("%s and %s have the same fingerprint", name, other)
		}
		seen[f] = name
	}
}

// TestSnapshotSectionDropsPatchPartitions: a snapshot taken before patch parts were counted with
// their partition recorded each patch partition as one of its own, with an object of no rows,
// which a restore could not load; every reader of the section sees the table's partitions only.
func TestSnapshotSectionDropsPatchPartitions(t *testing.T) {
	old := Section{Tables: []TableRecord{{Table: Table{Database: "default", Name: "events_full", Engine: "ReplacingMergeTree",
		Create: "CREATE TABLE default.events_full (`id` UInt64) ENGINE = ReplacingMergeTree ORDER BY id"},
		Partitions: []PartitionRecord{
			{Partition: Partition{ID: "202605", Parts: []string{"202605_1_1_1"}, Rows: 1000}, Object: "a"},
			{Partition: Partition{ID: "patch-9834becdf7e2e15ad7c410ffd6a5a63c-202605", Parts: []string{"patch-9834becdf7e2e15ad7c410ffd6a5a63c-202605_4_4_0_3"}, Rows: 100}, Object: "b"},
			{Partition: Partition{ID: "202606", Parts: []string{"202606_2_2_1"}, Rows: 1000}, Object: "c"},
		}}}}
	raw, err := json.Marshal(old)
	if err != nil {
		t.Fatal(err)
	}
	sec, _, err := SnapshotSection(&store.Manifest{ID: "20260101T000000Z-abcdef", Sections: map[string]json.RawMessage{"clickhouse": raw}})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, p := range sec.Tables[0].Partitions {
		ids = append(ids, p.ID)
	}
	if fmt.Sprint(ids) != "[202605 202606]" {
		t.Errorf("partitions read from the snapshot: %v; want [202605 202606]", ids)
	}
}
