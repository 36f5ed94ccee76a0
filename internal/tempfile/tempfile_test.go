package tempfile

import (
	"io"
	"os"
	"strings"
	"testing"
)

func TestUnlinkedLeavesNoNameAndKeepsData(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("TMPDIR", dir)
	f, err := Unlinked("a test")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Fatalf("the file's name is still in TMPDIR: %s", left[0].Name())
	}
	if _, err := f.WriteString("segment"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(f)
	if err != nil || string(got) != "segment" {
		t.Fatalf("read back %q, %v; want %q", got, err, "segment")
	}
}

func TestUnlinkedNamesPurposeAndFix(t *testing.T) {
	t.Setenv("TMPDIR", "/nonexistent/tracevault")
	_, err := Unlinked("a streamed transaction")
	if err == nil {
		t.Fatal("created a file in a directory that does not exist")
	}
	for _, want := range []string{"a streamed transaction", "TMPDIR"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
}
