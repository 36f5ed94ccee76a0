// Package deploy tests what deploys tracevault: the Helm chart, the offline container image and
// the systemd units. It has no code of its own; the tests read the files under deploy/.
package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var binary struct {
	once sync.Once
	path string
	err  error
	dir  string
}

// tracevaultBinary builds the real binary once per test run, static as the image ships it, so the
// tests check the chart's and units' configuration with the same `config check` users run.
func tracevaultBinary(t *testing.T) string {
	t.Helper()
	binary.once.Do(func() {
		binary.dir, binary.err = os.MkdirTemp("", "tracevault-deploy-test-")
		if binary.err != nil {
			return
		}
		binary.path = filepath.Join(binary.dir, "tracevault")
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X main.version=deploy-test", "-o", binary.path, "./cmd/tracevault")
		cmd.Dir = moduleRoot(t)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			binary.err = &buildError{err: err, out: string(out)}
		}
	})
	if binary.err != nil {
		t.Fatalf("build tracevault: %v", binary.err)
	}
	return binary.path
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return e.err.Error() + ": " + e.out }

func TestMain(m *testing.M) {
	code := m.Run()
	if binary.dir != "" {
		_ = os.RemoveAll(binary.dir)
	}
	os.Exit(code)
}

// moduleRoot is the directory of go.mod, one level up from this package.
func moduleRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root %s: %v", root, err)
	}
	return root
}

// configCheck runs `tracevault config check` on a TOML file with env set, and returns its output.
func configCheck(t *testing.T, toml string, env map[string]string) (string, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tracevault.toml")
	if err := os.WriteFile(path, []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(tracevaultBinary(t), "config", "check", path)
	// Only what the file names: a variable leaking in from the test's environment must not hide
	// a reference the deployment fails to set.
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}
