package clickhouse

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tracevault/tracevault/snapshot/clickhouse/partsum"
)

// These are the fallback for what the live servers cannot show. Freeze mode runs live on
// ClickHouse 18.16 (freeze_integration_test.go: data/<db>/<table>, shadow/increment.txt) and on
// 26.7 (freeze_modern_integration_test.go: FREEZE WITH NAME, Atomic store/<xxx>/<uuid> and
// Ordinary layouts, system.disks, a data path mounted elsewhere, wide, compact and projection
// parts). Neither shows a shadow whose table directory is not under the data path, another
// tool's freeze racing an 18.16 one, or a damaged archive: those stay fixtures here.

// TestDataPathOf: the data path from the system database's directory, used only without
// system.disks (before 19.15). 18.16 gives the first row live; the Atomic rows are defensive
// fixtures: Atomic databases came after system.disks, and ch-modern's system database is a
// Memory one.
func TestDataPathOf(t *testing.T) {
	tests := []struct {
		systemDB, want string
		wantErr        bool
	}{
		{"/var/lib/clickhouse/data/system/", "/var/lib/clickhouse/", false}, // 18.16, Ordinary
		{"/srv/ch1/data/data/system/", "/srv/ch1/data/", false},             // a data path that itself ends in data/
		{"/var/lib/clickhouse/store/", "/var/lib/clickhouse/", false},       // Atomic system database
		{"/var/lib/clickhouse/store/a1b/a1b2c3/", "/var/lib/clickhouse/", false},
		{"/somewhere/else/", "", true},
	}
	for _, tt := range tests {
		got, err := dataPathOf(tt.systemDB)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("dataPathOf(%q) = %q, %v; want %q, error %v", tt.systemDB, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestRemapPath(t *testing.T) {
	tests := []struct {
		name, p, server, local, want string
	}{
		{"no data_path: the server's paths as they are", "/var/lib/clickhouse/data/db/t/", "/var/lib/clickhouse/", "", "/var/lib/clickhouse/data/db/t/"},
		{"same mount point", "/var/lib/clickhouse/shadow", "/var/lib/clickhouse/", "/var/lib/clickhouse/", "/var/lib/clickhouse/shadow"},
		{"mounted elsewhere", "/var/lib/clickhouse/data/db/t/", "/var/lib/clickhouse/", "/mnt/ch1", "/mnt/ch1/data/db/t"},
		{"outside the data path stays", "/etc/clickhouse-server", "/var/lib/clickhouse/", "/mnt/ch1", "/etc/clickhouse-server"},
	}
	for _, tt := range tests {
		if got := remapPath(tt.p, tt.server, tt.local); got != tt.want {
			t.Errorf("%s: remapPath(%q) = %q; want %q", tt.name, tt.p, got, tt.want)
		}
	}
}

// mkParts lays out part directories with a count.txt and a column file each under dir.
func mkParts(t testing.TB, dir string, rows map[string]string) {
	t.Helper()
	for part, n := range rows {
		p := filepath.Join(dir, part)
		if err := os.MkdirAll(p, 0o750); err != nil {
			t.Fatal(err)
		}
		files := map[string]string{"count.txt": n, "x.bin": strings.Repeat(part, 1000)}
		// A checksums.txt as a server writes it (text format 2), so the parts pass the check
		// that extracting makes.
		sums := fmt.Sprintf("checksums format version: 2\n%d files:\n", len(files))
		for _, name := range []string{"count.txt", "x.bin"} {
			var h partsum.Hasher
			_, _ = h.Write([]byte(files[name]))
			sums += fmt.Sprintf("%s\n\tsize: %d\n\thash: %d %d\n\tcompressed: 0\n", name, h.Size(), h.Sum().Low, h.Sum().High)
		}
		files["checksums.txt"] = sums
		for name, body := range files {
			if err := os.WriteFile(filepath.Join(p, name), []byte(body), 0o640); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// The shadow layouts of both kinds of database: the table's directory is known from the
// server's data_path(s) column; the fallback (no such path under the data path) finds it as the
// parent of the first part. Both layouts with the directory known run live; the fallback walk
// and the error cases are fixtures only.
func TestFrozenScanFindsTheTableDirectory(t *testing.T) {
	tests := []struct {
		name  string
		table string // where the freeze put the table's parts, under shadow/<N>
	}{
		{"ordinary database", "data/db/traces"},
		{"atomic database", "store/a1b/a1b2c3d4-0000-0000-0000-000000000000"},
	}
	for _, tt := range tests {
		for _, known := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s, table directory known %v", tt.name, known), func(t *testing.T) {
				shadow := filepath.Join(t.TempDir(), "shadow", "7")
				mkParts(t, filepath.Join(shadow, tt.table), map[string]string{"202607_3_3_0": "5", "202607_1_2_1": "10"})
				f := &frozen{shadow: shadow}
				rel := ""
				if known {
					rel = tt.table + "/"
				}
				if err := f.scan(rel); err != nil {
					t.Fatal(err)
				}
				if f.dir != filepath.Join(shadow, tt.table) {
					t.Errorf("table directory %s; want %s", f.dir, filepath.Join(shadow, tt.table))
				}
				if want := []string{"202607_1_2_1", "202607_3_3_0"}; !reflect.DeepEqual(f.parts, want) || f.rows != 15 {
					t.Errorf("parts %v rows %d; want %v rows 15", f.parts, f.rows, want)
				}
				if err := f.remove(); err != nil {
					t.Fatal(err)
				}
				if _, err := os.Stat(shadow); !os.IsNotExist(err) {
					t.Errorf("shadow directory still there after remove: %v", err)
				}
			})
		}
	}
	t.Run("empty shadow", func(t *testing.T) {
		shadow := filepath.Join(t.TempDir(), "shadow", "1")
		if err := os.MkdirAll(filepath.Join(shadow, "data", "db", "t"), 0o750); err != nil {
			t.Fatal(err)
		}
		for _, rel := range []string{"", "data/db/t/"} {
			if err := (&frozen{shadow: shadow}).scan(rel); err == nil {
				t.Errorf("a shadow directory without parts scanned without error (table directory %q)", rel)
			}
		}
	})
	t.Run("another table's freeze", func(t *testing.T) {
		shadow := filepath.Join(t.TempDir(), "shadow", "3")
		mkParts(t, filepath.Join(shadow, "data", "db", "other"), map[string]string{"202607_1_1_0": "1"})
		if err := (&frozen{shadow: shadow}).scan("data/db/traces/"); err == nil {
			t.Error("parts of another table scanned without error")
		}
	})
}

func TestFreezeIncrement(t *testing.T) {
	notExist := fmt.Errorf("open shadow/increment.txt: %w", fs.ErrNotExist)
	tests := []struct {
		name      string
		before    uint64
		beforeErr error
		after     uint64
		afterErr  error
		want      uint64
		wantErr   string
	}{
		{"counted once", 6, nil, 7, nil, 7, ""},
		{"the server's first freeze", 0, notExist, 1, nil, 1, ""},
		{"another freeze meanwhile", 6, nil, 8, nil, 0, "another freeze ran"},
		{"first freeze and another", 0, notExist, 2, nil, 0, "another freeze ran"},
		{"not counted", 6, nil, 6, nil, 0, "not counted"},
		{"counter reset", 6, nil, 1, nil, 0, "not counted"},
		{"unreadable before", 0, errors.New("permission denied"), 7, nil, 0, "before the freeze"},
		{"absent after", 6, nil, 0, notExist, 0, "data_path"},
	}
	for _, tt := range tests {
		got, err := freezeIncrement(tt.before, tt.beforeErr, tt.after, tt.afterErr)
		if tt.wantErr == "" && (err != nil || got != tt.want) || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("%s: freezeIncrement = %d, %v; want %d, error containing %q", tt.name, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestPartsTarRoundTrip(t *testing.T) {
	src := t.TempDir()
	rows := map[string]string{"202607_1_1_0": "3", "202607_2_2_0": "4", "202608_3_3_0": "9"}
	mkParts(t, src, rows)
	var buf bytes.Buffer
	// Only the partition's parts go into its object, whatever else the directory holds.
	if err := writePartsTar(&buf, src, []string{"202607_1_1_0", "202607_2_2_0"}); err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	parts, err := extractPartsTar(&buf, dst, "202607", os.Getuid(), os.Getgid())
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"202607_1_1_0", "202607_2_2_0"}; !reflect.DeepEqual(parts, want) {
		t.Errorf("extracted parts %v; want %v", parts, want)
	}
	for _, part := range parts {
		for _, name := range []string{"count.txt", "checksums.txt", "x.bin"} {
			want, _ := os.ReadFile(filepath.Join(src, part, name))
			got, err := os.ReadFile(filepath.Join(dst, part, name))
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("%s/%s differs after the round trip (%v)", part, name, err)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(dst, "202608_3_3_0")); !os.IsNotExist(err) {
		t.Error("a part of another partition was archived")
	}
}

// An archive of one partition holding a part of another is refused, and nothing of it stays:
// partitions of one staging table load side by side, and ATTACH PARTITION would take that part.
func TestExtractPartsTarRefusesOtherPartition(t *testing.T) {
	src := t.TempDir()
	mkParts(t, src, map[string]string{"202607_1_1_0": "3", "202608_3_3_0": "9"})
	var buf bytes.Buffer
	if err := writePartsTar(&buf, src, []string{"202607_1_1_0", "202608_3_3_0"}); err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	if _, err := extractPartsTar(&buf, dst, "202607", os.Getuid(), os.Getgid()); err == nil || !strings.Contains(err.Error(), "202608_3_3_0") {
		t.Fatalf("extract = %v; want an error naming part 202608_3_3_0", err)
	}
	if entries, _ := os.ReadDir(dst); len(entries) != 0 {
		t.Errorf("the refused archive left %d entries in detached/", len(entries))
	}
}

func TestPartOf(t *testing.T) {
	for _, tt := range []struct {
		name, id string
		want     bool
	}{
		{"202607_1_1_0", "202607", true},
		{"202607_1_9_2_12", "202607", true},
		{"2026070_1_1_0", "202607", false},
		{"202608_1_1_0", "202607", false},
		{"all_1_1_0", "all", true},
		{"a1b2c3_4_4_0", "a1b2c3", true},
		{"20260705_20260731_1_1_0", "202607", true}, // old syntax: named by dates
		{"20260805_20260831_1_1_0", "202607", false},
		{"20260705_20260731_1_1_0", "2026070", false},
		{"attaching_202607_1_1_0", "202607", false},
	} {
		if got := partOf(tt.name, tt.id); got != tt.want {
			t.Errorf("partOf(%q, %q) = %v; want %v", tt.name, tt.id, got, tt.want)
		}
	}
}

func TestExtractPartsTarRejects(t *testing.T) {
	tests := []struct {
		name string
		hdr  tar.Header
	}{
		{"parent escape", tar.Header{Name: "../evil", Typeflag: tar.TypeReg, Size: 1, Mode: 0o640}},
		{"absolute path", tar.Header{Name: "/etc/evil", Typeflag: tar.TypeReg, Size: 1, Mode: 0o640}},
		{"symlink", tar.Header{Name: "p_1_1_0/link", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"}},
		{"no part directory", tar.Header{Name: "./", Typeflag: tar.TypeDir, Mode: 0o750}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			tw := tar.NewWriter(&buf)
			if err := tw.WriteHeader(&tt.hdr); err != nil {
				t.Fatal(err)
			}
			if tt.hdr.Size > 0 {
				tw.Write([]byte("x"))
			}
			tw.Close()
			dst := t.TempDir()
			if _, err := extractPartsTar(&buf, filepath.Join(dst, "detached"), "", os.Getuid(), os.Getgid()); err == nil {
				t.Error("extracted without error")
			}
			if _, err := os.Stat(filepath.Join(dst, "evil")); !os.IsNotExist(err) {
				t.Error("a file was written outside the detached directory")
			}
		})
	}
}

// failAtEOF passes its reader through and fails where it ends, as the repository's object
// reader does when the object's SHA-256 differs from the manifest's.
type failAtEOF struct{ r io.Reader }

func (f failAtEOF) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if errors.Is(err, io.EOF) {
		return n, errors.New("read data/ab/abcd: object corrupt: sha256 mismatch")
	}
	return n, err
}

// A sparse file of 1 TiB in an archive of 2 KiB: its holes would fill the disk before the
// object's checksum is ever compared. archive/tar writes no sparse files, so the PAX header
// is made by hand.
func TestExtractPartsTarRejectsSparseFiles(t *testing.T) {
	record := func(k, v string) string {
		s := " " + k + "=" + v + "\n"
		n := len(s)
		for m := len(fmt.Sprint(n)) + len(s); m != n; m = len(fmt.Sprint(n)) + len(s) {
			n = m
		}
		return fmt.Sprint(n) + s
	}
	pax := record("GNU.sparse.major", "1") + record("GNU.sparse.minor", "0") + record("GNU.sparse.name", "p_1_1_0/x.bin") + record("GNU.sparse.realsize", "1099511627776")
	sparseMap := "1\n1099511627775\n1\n"
	data := sparseMap + strings.Repeat("\x00", 512-len(sparseMap)) + "x"
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range []struct{ name, body string }{{"PaxHeaders/x", pax}, {"p_1_1_0/x.bin", data}} {
		if err := tw.WriteHeader(&tar.Header{Name: e.name, Typeflag: tar.TypeReg, Size: int64(len(e.body)), Mode: 0o640}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	tw.Close()
	raw := buf.Bytes()
	raw[156] = tar.TypeXHeader // the first entry becomes the PAX header of the second
	copy(raw[148:156], "        ")
	sum := 0
	for _, c := range raw[:512] {
		sum += int(c)
	}
	copy(raw[148:156], fmt.Sprintf("%06o\x00 ", sum))

	dst := t.TempDir()
	_, err := extractPartsTar(bytes.NewReader(raw), dst, "", os.Getuid(), os.Getgid())
	if err == nil || !strings.Contains(err.Error(), "sparse") {
		t.Errorf("extract a sparse file: %v; want it refused", err)
	}
	if left, _ := os.ReadDir(dst); len(left) > 0 {
		t.Errorf("%d entries left after refusing a sparse file", len(left))
	}
}

func TestExtractPartsTarVerifiesTheWholeObject(t *testing.T) {
	src := t.TempDir()
	mkParts(t, src, map[string]string{"202607_1_1_0": "3", "202607_2_2_0": "4"})
	var buf bytes.Buffer
	if err := writePartsTar(&buf, src, []string{"202607_1_1_0", "202607_2_2_0"}); err != nil {
		t.Fatal(err)
	}
	// A part damaged on the server's disk before the backup: the object's SHA-256 is sound,
	// the part's own checksums.txt is not.
	x := filepath.Join(src, "202607_2_2_0", "x.bin")
	body, err := os.ReadFile(x)
	if err != nil {
		t.Fatal(err)
	}
	body[len(body)/2] ^= 1
	if err := os.WriteFile(x, body, 0o640); err != nil {
		t.Fatal(err)
	}
	var damaged bytes.Buffer
	if err := writePartsTar(&damaged, src, []string{"202607_1_1_0", "202607_2_2_0"}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		r     io.Reader
		fails string // empty: extracts
	}{
		{"checksum verified at the end", bytes.NewReader(buf.Bytes()), ""},
		{"a part damaged before the backup", bytes.NewReader(damaged.Bytes()), "part 202607_2_2_0: file x.bin has CityHash128"},
		// The tar ends before the reader's EOF: a reader that only stops at the end-of-archive
		// blocks never sees the mismatch.
		{"checksum mismatch after the end-of-archive blocks", failAtEOF{bytes.NewReader(buf.Bytes())}, "sha256 mismatch"},
		// Cut inside the last file: both parts extracted so far are removed.
		{"truncated archive", bytes.NewReader(buf.Bytes()[:buf.Len()-3000]), "extract"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := t.TempDir()
			parts, err := extractPartsTar(tt.r, dst, "", os.Getuid(), os.Getgid())
			left, _ := os.ReadDir(dst)
			if tt.fails == "" {
				if err != nil || len(parts) != 2 || len(left) != 2 {
					t.Errorf("extract: parts %v, %d entries, %v; want both parts", parts, len(left), err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.fails) {
				t.Errorf("extract: %v; want an error containing %q", err, tt.fails)
			}
			if len(left) > 0 {
				t.Errorf("%d entries left in the detached directory after a failed extract; want none", len(left))
			}
		})
	}
}

// FuzzTarExtract feeds the parts extractor arbitrary archives (seeded with a frozen 18.16
// partition in testdata): it writes nothing outside its directory, and on an error leaves
// nothing inside it.
func FuzzTarExtract(f *testing.F) {
	src := f.TempDir()
	mkParts(f, src, map[string]string{"202607_1_1_0": "3"})
	var buf bytes.Buffer
	if err := writePartsTar(&buf, src, []string{"202607_1_1_0"}); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, archive []byte) {
		parent := t.TempDir()
		dst := filepath.Join(parent, "detached")
		if err := os.Mkdir(dst, 0o750); err != nil {
			t.Fatal(err)
		}
		parts, err := extractPartsTar(bytes.NewReader(archive), dst, "", os.Getuid(), os.Getgid())
		if outside, _ := os.ReadDir(parent); len(outside) != 1 {
			t.Fatalf("%d entries beside the detached directory after extracting", len(outside))
		}
		left, _ := os.ReadDir(dst)
		if err != nil && len(left) > 0 {
			t.Fatalf("extract failed (%v) and left %d entries", err, len(left))
		}
		for _, p := range parts {
			if !filepath.IsLocal(p) || strings.Contains(p, "/") {
				t.Fatalf("part name %q is not one directory under detached/", p)
			}
		}
	})
}

// FuzzDataPath parses the directories a server reports: the data path is a directory prefix of
// the system database's, and a table's directory taken relative to it never leaves the shadow.
func FuzzDataPath(f *testing.F) {
	for _, s := range []string{"/var/lib/clickhouse/data/system/", "/var/lib/clickhouse/store/", "/var/lib/clickhouse/store/a1b/a1b2c3/", "/srv/ch1/data/data/system", "/", "store/", "/x/../store/y"} {
		f.Add(s, "/var/lib/clickhouse/store/a1b/a1b2c3d4-0000-0000-0000-000000000000/")
	}
	f.Fuzz(func(t *testing.T, systemDB, table string) {
		root, err := dataPathOf(systemDB)
		if err != nil {
			return
		}
		if !strings.HasSuffix(root, "/") || !strings.HasPrefix(systemDB, root) && !strings.HasPrefix(systemDB+"/", root) {
			t.Fatalf("dataPathOf(%q) = %q: not a directory prefix of it", systemDB, root)
		}
		shadow := filepath.Join(t.TempDir(), "shadow", "1")
		rel, _ := strings.CutPrefix(table, root)
		fz := &frozen{shadow: shadow}
		if err := fz.scan(rel); err == nil || fz.dir != "" && !strings.HasPrefix(fz.dir, shadow) {
			t.Fatalf("scan(%q) of an empty shadow: dir %q, %v", rel, fz.dir, err)
		}
	})
}

func TestParseStatusStarted(t *testing.T) {
	for _, tt := range []struct {
		in, want string
		ok       bool
	}{
		{"PID: 13219\nStarted at: 2026-11-27 20:52:05\nRevision: 54412\n", "2026-11-27 20:52:05", true},
		{"PID: 1\r\nStarted at: 2026-11-27 20:52:05\r\n", "2026-11-27 20:52:05", true},
		{"PID: 13219\nRevision: 54412\n", "", false},
		{"Started at: yesterday\n", "", false},
		{"Started at: 2026-11-27 20:52:05'); DROP DATABASE x; --\n", "", false},
		{"", "", false},
	} {
		got, ok := parseStatusStarted([]byte(tt.in))
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseStatusStarted(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestParseConfigMacros(t *testing.T) {
	for _, tt := range []struct {
		name, in string
		want     map[string]string
		err      bool
	}{
		{"18.16 preprocessed", "<!-- generated -->\n<yandex>\n  <tcp_port>9000</tcp_port>\n  <macros><shard>01</shard><replica>ch1</replica></macros>\n</yandex>\n",
			map[string]string{"shard": "01", "replica": "ch1"}, false},
		{"modern root, spaced values", "<clickhouse><macros>\n  <replica> ch-2 </replica>\n  <cluster>c</cluster>\n</macros></clickhouse>",
			map[string]string{"replica": "ch-2", "cluster": "c"}, false},
		{"no macros", "<yandex><tcp_port>9000</tcp_port></yandex>", nil, false},
		{"an include left unresolved", `<yandex><macros incl="macros" optional="true"/></yandex>`, map[string]string{}, false},
		{"not XML", "PID: 1\n", nil, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseConfigMacros([]byte(tt.in))
			if (err != nil) != tt.err || (got == nil) != (tt.want == nil) || !maps.Equal(got, tt.want) {
				t.Errorf("parseConfigMacros = %v, %v; want %v (error %v)", got, err, tt.want, tt.err)
			}
		})
	}
}

func TestConfigMacrosOfADirectory(t *testing.T) {
	write := func(t *testing.T, files map[string]string) string {
		dir := t.TempDir()
		for name, body := range files {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	ch1 := "<yandex><macros><replica>ch1</replica></macros></yandex>"
	for _, tt := range []struct {
		name  string
		files map[string]string
		want  map[string]string
		err   bool
	}{
		{"config and users", map[string]string{"config.xml": ch1, "users.xml": "<yandex><profiles/></yandex>"}, map[string]string{"replica": "ch1"}, false},
		{"two configs that agree", map[string]string{"config.xml": ch1, "server.xml": ch1}, map[string]string{"replica": "ch1"}, false},
		{"two configs that disagree", map[string]string{"config.xml": ch1, "server.xml": "<yandex><macros><replica>ch2</replica></macros></yandex>"}, nil, true},
		{"none", map[string]string{}, nil, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := configMacros(write(t, tt.files))
			if (err != nil) != tt.err || !maps.Equal(got, tt.want) {
				t.Errorf("configMacros = %v, %v; want %v (error %v)", got, err, tt.want, tt.err)
			}
		})
	}
}

// TestRemoveStaleFreezes: only tracevault's named freezes older than staleFreezeAge go; a
// fresh one (a backup uploading it now), another tool's, 18.16's numbered ones and a file keep.
func TestRemoveStaleFreezes(t *testing.T) {
	now := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	old, fresh := now.Add(-staleFreezeAge-time.Minute), now.Add(-staleFreezeAge+time.Minute)
	cases := []struct {
		name    string
		dir     bool
		mtime   time.Time
		removed bool
	}{
		{"tracevault_0123456789abcdef", true, old, true},
		{"tracevault_fedcba9876543210", true, fresh, false},
		{"clickhouse_backup_tool", true, old, false},
		{"7", true, old, false},
		{"tracevault_not_a_dir", false, old, false},
	}
	local := t.TempDir()
	shadow := filepath.Join(local, "shadow")
	for _, c := range cases {
		p := filepath.Join(shadow, c.name)
		if c.dir {
			// A freeze holds the table's path and its parts' hard links.
			if err := os.MkdirAll(filepath.Join(p, "store", "abc", "all_1_1_0"), 0o755); err != nil {
				t.Fatal(err)
			}
		} else if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, c.mtime, c.mtime); err != nil {
			t.Fatal(err)
		}
	}
	removed, err := removeStaleFreezes(local, now)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, c := range cases {
		_, statErr := os.Stat(filepath.Join(shadow, c.name))
		if gone := errors.Is(statErr, fs.ErrNotExist); gone != c.removed {
			t.Errorf("%s: removed %v; want %v", c.name, gone, c.removed)
		}
		if c.removed {
			want = append(want, c.name)
		}
	}
	if !reflect.DeepEqual(removed, want) {
		t.Errorf("reported removed %v; want %v", removed, want)
	}
	if removed, err := removeStaleFreezes(t.TempDir(), now); err != nil || removed != nil {
		t.Errorf("a disk without shadow/: %v, %v; want nothing and no error", removed, err)
	}
}
