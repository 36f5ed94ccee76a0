package blobs

import (
	"errors"
	"testing"
)

// TestDirRefusesUnfitNames: names Azure keeps literally but a directory would resolve onto
// another blob's file, or outside itself, are refused; ordinary names pass.
func TestDirRefusesUnfitNames(t *testing.T) {
	d, err := openDir(t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		unfit bool
	}{
		{"events/p1/a.json", false},
		{"x", false},
		{"media/ü/100% done.png", false},
		{"..x/y", false},
		{"a/b..c", false},
		{"a/.tmpfile", false},
		{"", true},
		{".", true},
		{"..", true},
		{"../x", true},
		{"p/../x", true},
		{"p/..", true},
		{"./z", true},
		{"p/./y", true},
		{"/lead", true},
		{"p//w", true},
		{"trail/", true},
		{"q/.tmp-123", true},
		{"nul\x00byte", true},
	} {
		err := d.unfit(tc.name)
		if (err != nil) != tc.unfit || (err != nil && !errors.Is(err, errUnfitName)) {
			t.Errorf("unfit(%q) = %v; want unfit %v", tc.name, err, tc.unfit)
		}
	}
}
