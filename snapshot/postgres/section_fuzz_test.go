package postgres

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/tracevault/tracevault/snapshot/store"
)

// FuzzSection: a manifest's postgres section is repository content. Whatever it holds, and
// whichever of its objects the manifest lists, planning a whole-database restore never panics
// (a section without pre-data once did), and a plan it accepts replays schema only from
// objects with a recorded checksum and loads every recorded table from its own object.
func FuzzSection(f *testing.F) {
	sum := strings.Repeat("ab", 32)
	good, _ := json.Marshal(Section{Format: FormatVersion,
		PreData:  &ObjectRecord{Object: "p1", SHA256: sum},
		PostData: &ObjectRecord{Object: "p2", SHA256: sum},
		Tables: []TableRecord{{Table: Table{Schema: "public", Name: "t"}, Rows: 3, ObjectRecord: &ObjectRecord{Object: "t1", SHA256: sum}},
			{Table: Table{Schema: "public", Name: "parent"}}},
		LargeObjects: &LargeObjects{Count: 1, ObjectRecord: ObjectRecord{Object: "lo", SHA256: sum}}})
	f.Add(good, uint8(0xff))
	f.Add(good, uint8(0xfe))
	f.Add([]byte(`{"format":1,"tables":[{"schema":"s","name":"t","object":"x"}]}`), uint8(0xff))
	f.Add([]byte(`{"format":1,"pre_data":{"object":"a","sha256":""},"post_data":null}`), uint8(0xff))
	f.Add([]byte(`{"data_only":true}`), uint8(0))
	f.Fuzz(func(t *testing.T, raw []byte, listed uint8) {
		m := &store.Manifest{ID: "fuzz", Sections: map[string]json.RawMessage{"postgres": raw}}
		sec, err := ReadSection(m)
		if err != nil {
			return
		}
		var recs []*ObjectRecord
		recs = append(recs, sec.PreData, sec.PostData)
		for i := range sec.Tables {
			recs = append(recs, sec.Tables[i].ObjectRecord)
		}
		if sec.LargeObjects != nil {
			recs = append(recs, &sec.LargeObjects.ObjectRecord)
		}
		for i, rec := range recs {
			if rec != nil && listed&(1<<(i%8)) != 0 {
				m.Objects = append(m.Objects, store.ManifestObject{ObjectRef: store.ObjectRef{ID: rec.Object, SHA256: rec.SHA256}})
			}
		}
		steps, err := contentSteps(m, sec, objectsOf(m))
		if err != nil {
			return
		}
		loads := 0
		for _, s := range steps {
			switch s.Action {
			case "pre-data", "post-data":
				if !sha256Hex.MatchString(s.ref.SHA256) {
					t.Fatalf("%s runs from object %q without a valid recorded checksum (%q)", s.Action, s.ref.ID, s.ref.SHA256)
				}
			case "load":
				loads++
				if s.ref.ID == "" || s.ref.ID != s.loads[0].table.Object {
					t.Fatalf("table %s loads from object %q, its record names %q", s.Target, s.ref.ID, s.loads[0].table.Object)
				}
			}
		}
		want := 0
		for _, tr := range sec.Tables {
			if tr.ObjectRecord != nil {
				want++
			}
		}
		if steps[0].Action != "pre-data" || steps[len(steps)-1].Action != "sequences" || loads != want {
			t.Fatalf("plan %v: want pre-data first, sequences last and %d loads", steps, want)
		}
	})
}
