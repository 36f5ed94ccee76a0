package migrate

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestLoad(t *testing.T) {
	tests := []struct {
		name     string
		files    map[string]string
		versions []int64
		downs    int
		err      string
	}{
		{"sorted by number, not name", map[string]string{"10_b.up.sql": "", "10_b.down.sql": "", "9_a.up.sql": "", "README.md": "", "1_x.up.txt": ""}, []int64{9, 10}, 1, ""},
		{"timestamps", map[string]string{"20260501120000_init.up.sql": "", "20260601000000_more.up.sql": ""}, []int64{20260501120000, 20260601000000}, 0, ""},
		{"down without up", map[string]string{"3_x.down.sql": ""}, nil, 0, "no .up.sql"},
		{"same version twice", map[string]string{"3_x.up.sql": "", "3_y.up.sql": ""}, nil, 0, "two up files"},
	}
	for _, tt := range tests {
		dir := t.TempDir()
		writeFiles(t, dir, tt.files)
		ms, err := Load(dir)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: err = %v, want %q", tt.name, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		var got []int64
		downs := 0
		for _, m := range ms {
			got = append(got, m.Version)
			if m.Down != "" {
				downs++
			}
		}
		if len(got) != len(tt.versions) || (len(got) > 0 && (got[0] != tt.versions[0] || got[len(got)-1] != tt.versions[len(tt.versions)-1])) || downs != tt.downs {
			t.Errorf("%s: versions %v (%d downs), want %v (%d downs)", tt.name, got, downs, tt.versions, tt.downs)
		}
	}
	if _, err := Load(filepath.Join(t.TempDir(), "absent")); err == nil || !strings.Contains(err.Error(), "--dir") {
		t.Errorf("missing directory: err = %v, want guidance naming --dir", err)
	}
}

func TestNewFiles(t *testing.T) {
	now := time.Date(2026, 11, 25, 8, 30, 0, 0, time.UTC)
	tests := []struct {
		name     string
		existing []Migration
		title    string
		want     string
		err      string
	}{
		{"empty dir: timestamp", nil, "Add trace tags!", "20261125083000_add_trace_tags.up.sql", ""},
		{"sequence keeps its padding", []Migration{{Version: 7, Up: "/d/000007_x.up.sql"}}, "next", "000008_next.up.sql", ""},
		{"timestamps continue", []Migration{{Version: 20260101000000, Up: "/d/20260101000000_x.up.sql"}}, "t", "20261125083000_t.up.sql", ""},
		{"clock behind newest", []Migration{{Version: 20270101000000, Up: "/d/20270101000000_x.up.sql"}}, "t", "", "check the clock"},
		{"title without letters", nil, "--", "", "needs letters"},
	}
	for _, tt := range tests {
		up, down, err := NewFiles("/d", tt.existing, tt.title, now)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: err = %v, want %q", tt.name, err, tt.err)
			}
			continue
		}
		if err != nil || filepath.Base(up) != tt.want || strings.TrimSuffix(down, ".down.sql") != strings.TrimSuffix(up, ".up.sql") {
			t.Errorf("%s: got %s, %s, %v; want %s", tt.name, up, down, err, tt.want)
		}
	}
	dir := t.TempDir()
	up, down := filepath.Join(dir, "1_a.up.sql"), filepath.Join(dir, "1_a.down.sql")
	if err := Create(up, down); err != nil {
		t.Fatal(err)
	}
	if err := Create(up, down); err == nil || !strings.Contains(err.Error(), "exists already") {
		t.Errorf("second Create: err = %v, want a refusal to overwrite", err)
	}
}
