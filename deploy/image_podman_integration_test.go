package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tracevault/tracevault/internal/devstack"
)

const podmanImage = "localhost/tracevault:podman-test"

// podman runs Debian's podman (4.3) on a store of the test's own, with what this machine needs:
// no default ulimits (a containers.conf given by CONTAINERS_CONF) and runc as the runtime (crun
// refuses this machine's cgroups).
type podman struct {
	bin, runc, root, runroot, conf string
}

// requirePodman finds podman and runc: internal/devstack/stack.sh test-tools installs both with
// apt. Without them the test is skipped locally and fails under CI=true.
func requirePodman(t *testing.T) *podman {
	t.Helper()
	bin, err := exec.LookPath("podman")
	runc := "/usr/sbin/runc"
	if _, serr := os.Stat(runc); err == nil && serr != nil {
		runc, err = exec.LookPath("runc")
	}
	if err != nil {
		msg := "podman and runc are needed to run the image (internal/devstack/stack.sh test-tools installs them with apt): " + err.Error()
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	dir := t.TempDir()
	// podman refuses a runroot longer than 50 characters; t.TempDir's can be.
	short, err := os.MkdirTemp("", "tvpm")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(short) })
	p := &podman{bin: bin, runc: runc, root: filepath.Join(dir, "store"), runroot: filepath.Join(short, "run"), conf: filepath.Join(dir, "containers.conf")}
	if err := os.WriteFile(p.conf, []byte("[containers]\ndefault_ulimits = []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Removes the images and the store (overlay mounts included) the test made.
		if out, err := p.cmd(context.Background(), "system", "reset", "--force").CombinedOutput(); err != nil {
			t.Logf("podman system reset: %v: %s", err, out)
		}
	})
	return p
}

func (p *podman) cmd(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, p.bin, append([]string{"--root", p.root, "--runroot", p.runroot, "--runtime", p.runc, "--events-backend", "file"}, args...)...)
	cmd.Env = append(os.Environ(), "CONTAINERS_CONF="+p.conf)
	return cmd
}

func (p *podman) run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := p.cmd(ctx, args...).CombinedOutput()
	return string(out), err
}

// containerfile is the FROM scratch variant of deploy/image/Dockerfile: the same final-stage
// settings, and one layer with what the image needs (the static binary, CA certificates, pg_dump
// with its libraries, the numeric user).
func containerfile(dc dockerfileConfig) string {
	var b strings.Builder
	b.WriteString("FROM scratch\nADD layer.tar /\nENV PATH=/usr/local/bin:/usr/bin:/bin\n")
	for _, e := range dc.env {
		k, v, _ := strings.Cut(e, "=")
		fmt.Fprintf(&b, "ENV %s=%q\n", k, v)
	}
	for k, v := range dc.labels {
		fmt.Fprintf(&b, "LABEL %s=%q\n", k, v)
	}
	for _, port := range dc.exposed {
		fmt.Fprintf(&b, "EXPOSE %s\n", port)
	}
	ep, _ := json.Marshal(dc.entrypoint)
	cmd, _ := json.Marshal(dc.cmd)
	fmt.Fprintf(&b, "USER %s\nWORKDIR %s\nENTRYPOINT %s\nCMD %s\n", dc.user, dc.workdir, ep, cmd)
	return b.String()
}

// TestImageRunsUnderPodmanWithRunc builds the image with podman from the project's own static
// build (the FROM scratch variant: deploy/image/Dockerfile's settings over the files the offline
// test assembles, pg_dump and its libraries from this host), then runs it under runc as uid 65532
// with a read-only root filesystem: `version`, `config check`, pg_dump, and a backup of the local
// stack (host network) into a directory repository bind-mounted from the host, which the host's
// binary then lists, shows and verifies.
func TestImageRunsUnderPodmanWithRunc(t *testing.T) {
	pm := requirePodman(t)
	env := devstack.Require(t)
	bin := tracevaultBinary(t)

	dc := parseDockerfile(t, "image/Dockerfile", map[string]string{"VERSION": imageVersion, "REVISION": "podman"})
	files, pgDump := imageFiles(t, bin)
	build := t.TempDir()
	writeLayerTar(t, filepath.Join(build, "layer.tar"), files)
	if err := os.WriteFile(filepath.Join(build, "Containerfile"), []byte(containerfile(dc)), 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if out, err := pm.run(t, "build", "--network=none", "-t", podmanImage, "-f", filepath.Join(build, "Containerfile"), build); err != nil {
		t.Fatalf("podman build: %v\n%s", err, out)
	}
	t.Logf("podman build: %s", time.Since(start).Round(time.Millisecond))
	out, err := pm.run(t, "image", "inspect", "--format", "{{.Config.User}} {{json .Config.Entrypoint}} {{index .Config.Labels \"org.opencontainers.image.version\"}}", podmanImage)
	if err != nil || strings.TrimSpace(out) != `65532:65532 ["/usr/local/bin/tracevault"] `+imageVersion {
		t.Fatalf("image config: %v: %q", err, out)
	}

	// What the container sees: the configuration read-only at /etc/tracevault, the repository a
	// host directory at /repo that only the image's user can write.
	cfgDir, repoDir := t.TempDir(), t.TempDir()
	for _, d := range []string{cfgDir, repoDir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chown(repoDir, 65532, 65532); err != nil {
		t.Fatalf("give the repository directory to the image's user: %v", err)
	}
	pgDSN := env.PGDatabase(t, "it_podman")
	seedPostgres(t, pgDSN)
	db := env.CHDatabase(t, "it_podman")
	for _, q := range []string{
		fmt.Sprintf("CREATE TABLE %s.traces ON CLUSTER %s (id UInt64, day Date, name String) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/%s/traces', '{replica}') PARTITION BY toYYYYMM(day) ORDER BY id", db, env.CHCluster, db),
		fmt.Sprintf("INSERT INTO %s.traces SELECT number, toDate('2026-04-01') + number %% 60, toString(number) FROM system.numbers LIMIT 1000", db),
	} {
		if err := env.CHExec(0, q); err != nil {
			t.Fatal(err)
		}
	}
	config := func(repo string) string {
		return fmt.Sprintf(`[storage]
url = "file://%s"

[postgres]
dsn = "env:TRACEVAULT_PG_DSN"

%s
%s`, repo, env.ClickHouseTOML(db), env.ZooKeeperTOML())
	}
	if err := os.WriteFile(filepath.Join(cfgDir, "tracevault.toml"), []byte(config("/repo")), 0o644); err != nil {
		t.Fatal(err)
	}
	// A repository anywhere but the bind mount lands on the read-only root.
	if err := os.WriteFile(filepath.Join(cfgDir, "root.toml"), []byte(config("/var/lib/tracevault")), 0o644); err != nil {
		t.Fatal(err)
	}

	runArgs := []string{"run", "--rm", "--network=host", "--user", "65532:65532", "--read-only",
		"-v", cfgDir + ":/etc/tracevault:ro", "-v", repoDir + ":/repo", "-e", "TRACEVAULT_PG_DSN=" + pgDSN}
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"version", []string{podmanImage, "version"}, "tracevault deploy-test"},
		{"config check", []string{podmanImage, "config", "check"}, "/etc/tracevault/tracevault.toml: valid"},
		{"pg_dump", []string{"--entrypoint", "/usr/local/bin/pg_dump", podmanImage, "--version"}, "pg_dump (PostgreSQL) " + filepath.Base(filepath.Dir(filepath.Dir(pgDump)))},
		{"read-only root", []string{podmanImage, "--config", "/etc/tracevault/root.toml", "init"}, "read-only file system"},
		{"init", []string{podmanImage, "init"}, "created repository file:///repo"},
		{"backup", []string{podmanImage, "backup"}, "complete"},
	} {
		start := time.Now()
		out, err := pm.run(t, append(runArgs, c.args...)...)
		if (err != nil) != (c.name == "read-only root") || !strings.Contains(out, c.want) {
			t.Fatalf("%s in the container: %v\n%s\nwant %q", c.name, err, out, c.want)
		}
		t.Logf("%s in the container: %s", c.name, time.Since(start).Round(time.Millisecond))
	}

	// The repository's files are the container user's, written through the bind mount.
	var owned, total int
	_ = filepath.Walk(repoDir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			total++
			if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid == 65532 {
				owned++
			}
		}
		return nil
	})
	if total == 0 || owned != total {
		t.Errorf("%d of %d repository files owned by uid 65532; want all, written from the container", owned, total)
	}

	// The host's binary reads the snapshot the container wrote.
	hostCfg := filepath.Join(t.TempDir(), "tracevault.toml")
	if err := os.WriteFile(hostCfg, []byte(config(repoDir)), 0o600); err != nil {
		t.Fatal(err)
	}
	host := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"--config", hostCfg}, args...)...)
		cmd.Env = append(os.Environ(), "TRACEVAULT_PG_DSN="+pgDSN)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("tracevault %s on the host: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	var snaps []struct {
		Status  string   `json:"status"`
		Sources []string `json:"sources"`
		FullSet bool     `json:"full_set"`
	}
	if err := json.Unmarshal([]byte(host("list", "--json")), &snaps); err != nil {
		t.Fatal(err)
	}
	if len(snaps) != 1 || snaps[0].Status != "complete" || !snaps[0].FullSet || strings.Join(snaps[0].Sources, ",") != "postgres,clickhouse,zookeeper" {
		t.Fatalf("snapshots the container wrote: %+v; want one complete full set of postgres, clickhouse, zookeeper", snaps)
	}
	show := host("show", "latest")
	traces, items := 0, 0
	for _, line := range strings.Split(show, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 5 && f[0] == "clickhouse" && f[1] == db+".traces":
			n, _ := strconv.Atoi(f[4]) // SOURCE TABLE PARTITION REPLICA ROWS
			traces += n
		case len(f) >= 3 && f[0] == "postgres" && strings.HasSuffix(f[1], ".public.items"):
			items, _ = strconv.Atoi(f[2]) // SOURCE TABLE ROWS
		}
	}
	if traces != 1000 || items != 500 {
		t.Errorf("the snapshot holds %d rows of %s.traces and %d of public.items, want 1000 and 500:\n%s", traces, db, items, show)
	}
	host("verify", "latest", "--read-data")
}

// seedPostgres gives the scratch database a table for pg_dump and COPY to carry.
func seedPostgres(t *testing.T, dsn string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE TABLE items (id int PRIMARY KEY, name text); INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 500) g"); err != nil {
		t.Fatal(err)
	}
}
