package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

var units = []string{"tracevault.service", "tracevault-backup.service", "tracevault-backup.timer"}

// systemdRoot lays out a root for `systemd-analyze --root`: the host's system units (targets the
// units order against), the built binary where ExecStart names it, the units under
// /etc/systemd/system and, when given, drop-ins for both services.
func systemdRoot(t *testing.T, dropIn string) string {
	t.Helper()
	root := t.TempDir()
	sys := "/usr/lib/systemd/system"
	if _, err := os.Stat(sys); err != nil {
		sys = "/lib/systemd/system"
	}
	for _, d := range []string{"usr/lib/systemd", "usr/local/bin", "etc/systemd/system"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("cp", "-a", sys, filepath.Join(root, "usr/lib/systemd/system")).CombinedOutput(); err != nil {
		t.Fatalf("copy %s: %v: %s", sys, err, out)
	}
	// A hard link, not a symlink: systemd-analyze resolves an absolute link target inside root.
	bin := filepath.Join(root, "usr/local/bin/tracevault")
	if err := os.Link(tracevaultBinary(t), bin); err != nil {
		copyFile(t, tracevaultBinary(t), bin)
		if err := os.Chmod(bin, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, u := range units {
		copyFile(t, filepath.Join("systemd", u), filepath.Join(root, "etc/systemd/system", u))
	}
	if dropIn != "" {
		for _, svc := range []string{"tracevault.service", "tracevault-backup.service"} {
			dir := filepath.Join(root, "etc/systemd/system", svc+".d")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			copyFile(t, filepath.Join("systemd", dropIn), filepath.Join(dir, filepath.Base(dropIn)))
		}
	}
	return root
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func systemdAnalyze(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("systemd-analyze missing; `internal/devstack/stack.sh test-tools` installs Debian's systemd")
		}
		t.Skip("systemd-analyze missing; `internal/devstack/stack.sh test-tools` installs Debian's systemd")
	}
	return p
}

var exposure = regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`)

// TestSystemdUnitsVerify runs Debian's `systemd-analyze verify` on the units, alone and with the
// freeze-mode drop-in: it reports unknown keys, bad values and a missing ExecStart binary only as
// messages, so any output fails. `systemd-analyze security` must rate each service's exposure
// low (2.0 or less on its 0-10 scale), which holds only with the sandboxing in place.
func TestSystemdUnitsVerify(t *testing.T) {
	sa := systemdAnalyze(t)
	for _, dropIn := range []string{"", "tracevault.service.d/freeze.conf"} {
		name := "plain"
		if dropIn != "" {
			name = "with " + dropIn
		}
		t.Run(name, func(t *testing.T) {
			root := systemdRoot(t, dropIn)
			out, err := exec.Command(sa, append([]string{"verify", "--root=" + root}, units...)...).CombinedOutput()
			if err != nil || len(strings.TrimSpace(string(out))) > 0 {
				t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
			}
			for _, svc := range units[:2] {
				out, err := exec.Command(sa, "security", "--offline=yes", "--root="+root, svc).CombinedOutput()
				m := exposure.FindSubmatch(out)
				if err != nil || m == nil {
					t.Fatalf("systemd-analyze security %s: %v\n%s", svc, err, out)
				}
				if level, _ := strconv.ParseFloat(string(m[1]), 64); level > 2.0 {
					t.Errorf("%s: exposure %.1f, want <= 2.0\n%s", svc, level, out)
				}
			}
		})
	}
}

// TestSystemdUnitsSettings checks what verify cannot: the keys the runbook relies on.
func TestSystemdUnitsSettings(t *testing.T) {
	want := map[string][]string{
		"tracevault.service": {"ProtectSystem=strict", "NoNewPrivileges=yes", "DynamicUser=yes", "StateDirectory=tracevault",
			"EnvironmentFile=/etc/tracevault/tracevault.env", "ExecStartPre=/usr/local/bin/tracevault config check",
			"ExecStart=/usr/local/bin/tracevault serve --log-format json --grace 5min", "TimeoutStopSec=330"},
		"tracevault-backup.service": {"Type=oneshot", "ProtectSystem=strict", "NoNewPrivileges=yes", "DynamicUser=yes",
			"EnvironmentFile=/etc/tracevault/tracevault.env", "ExecStart=/usr/local/bin/tracevault backup --log-format json",
			"Conflicts=tracevault.service"},
		"tracevault-backup.timer":          {"Persistent=true", "Unit=tracevault-backup.service", "WantedBy=timers.target"},
		"tracevault.service.d/freeze.conf": {"ReadWritePaths=/var/lib/clickhouse", "User=clickhouse", "DynamicUser=no"},
	}
	for file, lines := range want {
		data, err := os.ReadFile(filepath.Join("systemd", file))
		if err != nil {
			t.Fatal(err)
		}
		have := map[string]bool{}
		for _, l := range strings.Split(string(data), "\n") {
			have[strings.TrimSpace(l)] = true
		}
		for _, l := range lines {
			if !have[l] {
				t.Errorf("%s lacks %q", file, l)
			}
		}
	}
}
