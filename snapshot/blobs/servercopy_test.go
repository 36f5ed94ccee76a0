package blobs

import (
	"testing"

	"github.com/tracevault/tracevault/snapshot/store"
)

// TestCopierWants: only blobs a copy can prove (a listed MD5) within the copy's size range are
// copied, and none once copying is off.
func TestCopierWants(t *testing.T) {
	sum := make([]byte, 16)
	for _, tc := range []struct {
		name string
		size int64
		md5  []byte
		off  bool
		want bool
	}{
		{"at the minimum", 1 << 20, sum, false, true},
		{"the largest copy", store.MaxServerCopy, sum, false, true},
		{"below the minimum", 1<<20 - 1, sum, false, false},
		{"over one copy", store.MaxServerCopy + 1, sum, false, false},
		{"no listed md5", 2 << 20, nil, false, false},
		{"a malformed md5", 2 << 20, sum[:8], false, false},
		{"copying turned off", 2 << 20, sum, true, false},
	} {
		cp := &copier{min: 1 << 20}
		cp.off.Store(tc.off)
		if got := cp.wants(&slot{rec: Record{Size: tc.size}, listedMD5: tc.md5}); got != tc.want {
			t.Errorf("%s: wants %v", tc.name, got)
		}
	}
	if (*copier)(nil).wants(&slot{rec: Record{Size: 2 << 20}, listedMD5: sum}) {
		t.Error("no copier wants a blob")
	}
}
