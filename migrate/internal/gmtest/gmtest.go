// Package gmtest is what the migration drivers' tests share: the conformance suite every driver
// runs against its live database (Conformance, as golang-migrate's drivers share
// database/testing), and the real golang-migrate CLI, built once per machine at a pinned version
// and cached, so tests compare against the tool itself rather than a reading of its source.
package gmtest

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Version is the golang-migrate release the tests pin.
const Version = "v4.20.1"

// Binary returns the path of golang-migrate's CLI built with the clickhouse and postgres
// drivers, installing it under $(go env GOCACHE)/../tracevault-tools when it is not there yet.
func Binary(tb testing.TB) string {
	tb.Helper()
	out, err := exec.Command("go", "env", "GOCACHE").Output()
	if err != nil {
		tb.Fatalf("go env GOCACHE: %v", err)
	}
	bin := filepath.Join(filepath.Dir(strings.TrimSpace(string(out))), "tracevault-tools", "golang-migrate-"+Version)
	path := filepath.Join(bin, "migrate")
	if _, err := os.Stat(path); err == nil {
		return path
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "install", "-tags", "clickhouse postgres", "github.com/golang-migrate/migrate/v4/cmd/migrate@"+Version)
	cmd.Env = append(os.Environ(), "GOBIN="+bin)
	cmd.Dir = os.TempDir() // outside this module, so its go.mod does not constrain the install
	if msg, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("install golang-migrate %s: %v\n%s", Version, err, msg)
	}
	return path
}

// Run runs the CLI and returns its combined output: it logs results, `version` included, to
// stderr.
func Run(tb testing.TB, bin string, args ...string) (string, error) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var buf bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	return strings.TrimSpace(buf.String()), err
}
