package deploy

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

const (
	imageRef     = "tracevault:offline-test"
	imageVersion = "offline-test"
)

// dockerfileConfig is what the final stage of deploy/image/Dockerfile says about the running
// image: the offline build copies it, so the two cannot drift apart.
type dockerfileConfig struct {
	user, workdir       string
	entrypoint, cmd     []string
	env                 []string
	labels              map[string]string
	exposed             []string
	args                map[string]string
	finalStageFromImage string
}

var (
	dfPair = regexp.MustCompile(`([A-Za-z0-9_.-]+)=("(?:[^"\\]|\\.)*"|\S+)`)
	dfArg  = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)
)

func parseDockerfile(t *testing.T, file string, args map[string]string) dockerfileConfig {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	// Join continuation lines, drop comments.
	var lines []string
	cur := ""
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "#") {
			continue
		}
		if strings.HasSuffix(l, "\\") {
			cur += strings.TrimSuffix(l, "\\") + " "
			continue
		}
		lines = append(lines, cur+l)
		cur = ""
	}
	var dc dockerfileConfig
	for _, l := range lines {
		instr, rest, _ := strings.Cut(strings.TrimSpace(l), " ")
		rest = strings.TrimSpace(rest)
		switch strings.ToUpper(instr) {
		case "FROM":
			dc = dockerfileConfig{labels: map[string]string{}, finalStageFromImage: rest, args: dc.args}
		case "ARG":
			if dc.args == nil {
				dc.args = map[string]string{}
			}
			k, v, _ := strings.Cut(rest, "=")
			if given, ok := args[k]; ok {
				v = given
			}
			dc.args[k] = v
		case "LABEL", "ENV":
			for _, m := range dfPair.FindAllStringSubmatch(rest, -1) {
				v := strings.Trim(m[2], `"`)
				v = dfArg.ReplaceAllStringFunc(v, func(s string) string { return dc.args[dfArg.FindStringSubmatch(s)[1]] })
				if instr == "LABEL" {
					dc.labels[m[1]] = v
				} else {
					dc.env = append(dc.env, m[1]+"="+v)
				}
			}
		case "USER":
			dc.user = rest
		case "WORKDIR":
			dc.workdir = rest
		case "EXPOSE":
			dc.exposed = strings.Fields(rest)
		case "ENTRYPOINT", "CMD":
			var v []string
			if err := json.Unmarshal([]byte(rest), &v); err != nil {
				t.Fatalf("%s %s: want the exec (JSON) form: %v", instr, rest, err)
			}
			if instr == "CMD" {
				dc.cmd = v
			} else {
				dc.entrypoint = v
			}
		}
	}
	return dc
}

// imageFile is one file of the offline image: its path in the image and where its bytes come
// from on this host ("" for a directory, or a symlink when link is set).
type imageFile struct {
	name, src, link string
	mode            int64
	body            string
}

// imageFiles lists what the offline image holds: the static binary, the CA bundle, this host's
// newest pg_dump with every library ldd lists (and the loader), /etc/passwd for the numeric user.
func imageFiles(t *testing.T, bin string) (files []imageFile, pgDump string) {
	t.Helper()
	majors, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_dump")
	if len(majors) == 0 {
		msg := "no /usr/lib/postgresql/*/bin/pg_dump on this host; internal/devstack/stack.sh up installs PostgreSQL"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	sort.Strings(majors)
	pgDump, err := filepath.EvalSymlinks(majors[len(majors)-1])
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ldd", pgDump).Output()
	if err != nil {
		t.Fatalf("ldd %s: %v", pgDump, err)
	}
	files = []imageFile{
		{name: "/usr/local/bin/tracevault", src: bin, mode: 0o755},
		{name: "/etc/ssl/certs/ca-certificates.crt", src: "/etc/ssl/certs/ca-certificates.crt", mode: 0o644},
		{name: pgDump, src: pgDump, mode: 0o755},
		{name: "/usr/local/bin/pg_dump", link: pgDump},
		{name: "/etc/passwd", mode: 0o644, body: "root:x:0:0:root:/root:/usr/sbin/nologin\nnonroot:x:65532:65532:nonroot:/tmp:/usr/sbin/nologin\n"},
		{name: "/etc/group", mode: 0o644, body: "root:x:0:\nnonroot:x:65532:\n"},
		{name: "/tmp", mode: 0o1777},
		{name: "/etc/tracevault", mode: 0o755},
	}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		// "libpq.so.5 => /lib/x86_64-linux-gnu/libpq.so.5 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)"
		f := strings.Fields(sc.Text())
		lib := ""
		switch {
		case len(f) >= 3 && f[1] == "=>" && strings.HasPrefix(f[2], "/"):
			lib = f[2]
		case len(f) >= 1 && strings.HasPrefix(f[0], "/"):
			lib = f[0]
		case strings.Contains(sc.Text(), "not found"):
			t.Fatalf("ldd %s: %s", pgDump, sc.Text())
		}
		if lib != "" {
			files = append(files, imageFile{name: lib, src: lib, mode: 0o755})
		}
	}
	return files, pgDump
}

// writeLayerTar writes files, with their parent directories, as one tar.
func writeLayerTar(t *testing.T, dst string, files []imageFile) {
	t.Helper()
	f, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	dirs := map[string]bool{}
	var addDirs func(string)
	addDirs = func(d string) {
		if d == "/" || dirs[d] {
			return
		}
		addDirs(path.Dir(d))
		dirs[d] = true
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(d, "/") + "/", Mode: 0o755}); err != nil {
			t.Fatal(err)
		}
	}
	for _, file := range files {
		addDirs(path.Dir(file.name))
		name := strings.TrimPrefix(file.name, "/")
		switch {
		case file.link != "":
			err = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: file.link, Mode: 0o777})
		case file.src == "" && file.body == "":
			dirs[file.name] = true
			err = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: file.mode})
		case file.body != "":
			if err = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: file.mode, Size: int64(len(file.body))}); err == nil {
				_, err = io.WriteString(tw, file.body)
			}
		default:
			err = copyIntoTar(tw, name, file)
		}
		if err != nil {
			t.Fatalf("layer: %s: %v", file.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
}

func copyIntoTar(tw *tar.Writer, name string, file imageFile) error {
	src, err := os.Open(file.src) // follows symlinks: the image gets the library itself
	if err != nil {
		return err
	}
	defer src.Close()
	st, err := src.Stat()
	if err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: file.mode, Size: st.Size()}); err != nil {
		return err
	}
	_, err = io.Copy(tw, src)
	return err
}

// buildOfflineImage assembles the image the Dockerfile describes into an OCI layout at dir.
func buildOfflineImage(t *testing.T, dir string, dc dockerfileConfig, files []imageFile) {
	t.Helper()
	tarPath := filepath.Join(t.TempDir(), "layer.tar")
	writeLayerTar(t, tarPath, files)
	layer, err := tarball.LayerFromFile(tarPath, tarball.WithMediaType(types.OCILayer), tarball.WithCompressionLevel(gzip.BestSpeed))
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	img = mutate.ConfigMediaType(mutate.MediaType(img, types.OCIManifestSchema1), types.OCIConfigJSON)
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	cf.Config = v1.Config{
		User:         dc.user,
		WorkingDir:   dc.workdir,
		Entrypoint:   dc.entrypoint,
		Cmd:          dc.cmd,
		Env:          append([]string{"PATH=/usr/local/bin:/usr/bin:/bin"}, dc.env...),
		Labels:       dc.labels,
		ExposedPorts: map[string]struct{}{},
	}
	for _, p := range dc.exposed {
		cf.Config.ExposedPorts[p+"/tcp"] = struct{}{}
	}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": imageRef})); err != nil {
		t.Fatal(err)
	}
}

// extract unpacks the image's flattened filesystem under root, refusing paths that leave it.
func extract(t *testing.T, img v1.Image, root string) {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(root, filepath.FromSlash(h.Name))
		if !strings.HasPrefix(dst, root+string(filepath.Separator)) {
			t.Fatalf("image entry %q leaves the root", h.Name)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(dst, os.FileMode(h.Mode)&os.ModePerm)
			if err == nil {
				err = os.Chmod(dst, os.FileMode(h.Mode)&os.ModePerm|sticky(h.Mode))
			}
		case tar.TypeSymlink:
			err = os.Symlink(h.Linkname, dst)
		case tar.TypeReg:
			var f *os.File
			if f, err = os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_EXCL, os.FileMode(h.Mode)&os.ModePerm); err == nil {
				_, err = io.Copy(f, tr)
				if cerr := f.Close(); err == nil {
					err = cerr
				}
			}
		default:
			err = fmt.Errorf("unexpected entry type %c", h.Typeflag)
		}
		if err != nil {
			t.Fatalf("extract %s: %v", h.Name, err)
		}
	}
}

func sticky(mode int64) os.FileMode {
	if mode&0o1000 != 0 {
		return os.ModeSticky
	}
	return 0
}

// TestOfflineImageLayoutInspectedAndRunInChroot builds the image of deploy/image/Dockerfile
// without a registry or container engine (no registry is reachable here; podman runs the same
// files in TestImageRunsUnderPodmanWithRunc): an OCI layout written with
// go-containerregistry from the static binary, the CA bundle and this host's pg_dump with its
// libraries. It validates the layout (digests, diff IDs), checks the config against the
// Dockerfile and the files, then runs the extracted filesystem chrooted as the image's numeric
// user: `tracevault version`, `tracevault config check` on the chart's default configuration and
// `pg_dump --version` (which proves ldd's library list is complete). Without root it runs the
// extracted binary outside any root and says so.
func TestOfflineImageLayoutInspectedAndRunInChroot(t *testing.T) {
	bin := tracevaultBinary(t)
	ef, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ef.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s is dynamically linked; the image needs a static binary (CGO_ENABLED=0)", bin)
		}
	}
	ef.Close()

	dc := parseDockerfile(t, "image/Dockerfile", map[string]string{"VERSION": imageVersion, "REVISION": "offline"})
	if dc.finalStageFromImage == "" || dc.user == "" || len(dc.entrypoint) == 0 {
		t.Fatalf("Dockerfile final stage: %+v", dc)
	}
	files, pgDump := imageFiles(t, bin)
	dir := filepath.Join(t.TempDir(), "oci")
	buildOfflineImage(t, dir, dc, files)

	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 || im.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != imageRef || im.Manifests[0].MediaType != types.OCIManifestSchema1 {
		t.Fatalf("layout index: %+v", im.Manifests)
	}
	img, err := idx.Image(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(img); err != nil {
		t.Fatalf("image in the layout does not validate: %v", err)
	}

	t.Run("config", func(t *testing.T) {
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		c := cf.Config
		uid, _, _ := strings.Cut(c.User, ":")
		if uid != "65532" {
			t.Errorf("User %q: want the numeric non-root 65532 (runAsNonRoot needs a number)", c.User)
		}
		if strings.Join(c.Entrypoint, " ") != "/usr/local/bin/tracevault" || strings.Join(c.Cmd, " ") != "serve" {
			t.Errorf("Entrypoint %q Cmd %q, want tracevault serve", c.Entrypoint, c.Cmd)
		}
		for _, k := range []string{"title", "description", "source", "version", "revision"} {
			if c.Labels["org.opencontainers.image."+k] == "" {
				t.Errorf("OCI label org.opencontainers.image.%s missing", k)
			}
		}
		if c.Labels["org.opencontainers.image.version"] != imageVersion {
			t.Errorf("version label %q, want the build arg %q", c.Labels["org.opencontainers.image.version"], imageVersion)
		}
		if _, ok := c.ExposedPorts["8480/tcp"]; !ok {
			t.Errorf("exposed ports %v, want 8480 (the chart's web.listen)", c.ExposedPorts)
		}
		if cf.OS != "linux" || cf.Architecture != runtime.GOARCH {
			t.Errorf("platform %s/%s", cf.OS, cf.Architecture)
		}
	})

	root := filepath.Join(t.TempDir(), "rootfs")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	extract(t, img, root)
	t.Run("files", func(t *testing.T) {
		for _, f := range files {
			st, err := os.Lstat(filepath.Join(root, f.name))
			if err != nil {
				t.Errorf("%s missing from the image: %v", f.name, err)
				continue
			}
			if f.src != "" && st.Mode().IsRegular() && st.Mode().Perm()&0o111 == 0 && f.mode&0o111 != 0 {
				t.Errorf("%s is not executable", f.name)
			}
		}
	})

	// The chart's default configuration, as its ConfigMap mounts it.
	r, err := render(t, loadChart(t), wiValues)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc/tracevault/tracevault.toml"), []byte(configTOML(t, r)), 0o644); err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	env := append(cf.Config.Env, "TRACEVAULT_PG_DSN=postgres://u:p@db:5432/langfuse", "CLICKHOUSE_PASSWORD=x")
	runs := []struct {
		args []string
		want string
	}{
		{[]string{"/usr/local/bin/tracevault", "version"}, "tracevault " + "deploy-test"},
		{[]string{"/usr/local/bin/tracevault", "config", "check"}, "/etc/tracevault/tracevault.toml: valid"},
		{[]string{"/usr/local/bin/pg_dump", "--version"}, "pg_dump (PostgreSQL) " + filepath.Base(filepath.Dir(filepath.Dir(pgDump)))},
	}
	if os.Geteuid() != 0 {
		t.Run("extracted tracevault run outside a container (no root for chroot)", func(t *testing.T) {
			out, err := exec.Command(filepath.Join(root, "usr/local/bin/tracevault"), "version").CombinedOutput()
			if err != nil || !strings.Contains(string(out), runs[0].want) {
				t.Fatalf("version: %v: %s", err, out)
			}
		})
		return
	}
	t.Run("run in chroot as 65532", func(t *testing.T) {
		for _, run := range runs {
			cmd := exec.Command(run.args[0], run.args[1:]...)
			cmd.Env = env
			cmd.Dir = "/tmp"
			cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root, Credential: &syscall.Credential{Uid: 65532, Gid: 65532}}
			out, err := cmd.CombinedOutput()
			if err != nil || !strings.Contains(string(out), run.want) {
				t.Errorf("%s in the image: %v\n%s\nwant %q", strings.Join(run.args, " "), err, out, run.want)
			}
		}
	})
}
