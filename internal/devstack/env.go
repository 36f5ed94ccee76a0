// Package devstack reads the contract that internal/devstack/stack.sh leaves in .stack/env, so tests,
// benchmarks and tools find the local PostgreSQL, ZooKeeper, ClickHouse replicas and Azurite
// without hard-coding ports.
package devstack

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Env is the parsed .stack/env file.
type Env struct {
	Dir                   string   // absolute path of the state dir (.stack)
	PGDSN                 string   // STACK_PG_DSN: libpq URL of the demo database, superuser
	CHNative              []string // STACK_CH_NATIVE: host:port of the native protocol, replica 1 first
	CHHTTP                []string // STACK_CH_HTTP: host:port of the HTTP interface, same order
	CHDataDirs            []string // STACK_CH_DATA: each replica's data path, same order
	CHCluster             string   // STACK_CH_CLUSTER: remote_servers cluster name
	ZK                    string   // STACK_ZK: host:port
	AzureConnectionString string   // STACK_AZURE_CONNECTION_STRING
	AzureContainer        string   // STACK_AZURE_CONTAINER
	CHModernNative        string   // STACK_CH_MODERN_NATIVE: host:port of the single ClickHouse 26.x (ch-modern)
	CHModernHTTP          string   // STACK_CH_MODERN_HTTP: its HTTP interface
	CHModernData          string   // STACK_CH_MODERN_DATA: its data path (Atomic store/ layout)
	ConfigPath            string   // .stack/tracevault.toml
	ModernConfigPath      string   // .stack/modern.toml: the same stack with ch-modern as ClickHouse
	raw                   map[string]string
}

// Get returns any variable of the file, for values the struct does not name.
func (e *Env) Get(key string) string { return e.raw[key] }

// ErrAbsent means no stack has been started (no .stack/env found).
var ErrAbsent = errors.New("local stack not running: no .stack/env found (run `make stack-up`)")

// Find locates the state dir: $TRACEVAULT_STACK_DIR, else the first .stack/env walking up from
// the working directory (tests run in their package directory).
func Find() (string, error) {
	if d := os.Getenv("TRACEVAULT_STACK_DIR"); d != "" {
		return filepath.Abs(d)
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find stack dir: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, ".stack", "env")); err == nil {
			return filepath.Join(dir, ".stack"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", ErrAbsent
		}
		dir = parent
	}
}

// Load parses the env file of the stack found by Find.
func Load() (*Env, error) {
	dir, err := Find()
	if err != nil {
		return nil, err
	}
	raw, err := parseEnvFile(filepath.Join(dir, "env"))
	if err != nil {
		return nil, err
	}
	e := &Env{
		Dir:                   dir,
		PGDSN:                 raw["STACK_PG_DSN"],
		CHNative:              strings.Fields(raw["STACK_CH_NATIVE"]),
		CHHTTP:                strings.Fields(raw["STACK_CH_HTTP"]),
		CHDataDirs:            strings.Fields(raw["STACK_CH_DATA"]),
		CHCluster:             raw["STACK_CH_CLUSTER"],
		ZK:                    raw["STACK_ZK"],
		AzureConnectionString: raw["STACK_AZURE_CONNECTION_STRING"],
		AzureContainer:        raw["STACK_AZURE_CONTAINER"],
		CHModernNative:        raw["STACK_CH_MODERN_NATIVE"],
		CHModernHTTP:          raw["STACK_CH_MODERN_HTTP"],
		CHModernData:          raw["STACK_CH_MODERN_DATA"],
		ConfigPath:            filepath.Join(dir, "tracevault.toml"),
		ModernConfigPath:      filepath.Join(dir, "modern.toml"),
		raw:                   raw,
	}
	if e.PGDSN == "" || len(e.CHNative) == 0 || e.ZK == "" || e.AzureConnectionString == "" {
		return nil, fmt.Errorf("read %s: STACK_PG_DSN, STACK_CH_NATIVE, STACK_ZK and STACK_AZURE_CONNECTION_STRING are required; re-run `make stack-up`", filepath.Join(dir, "env"))
	}
	return e, nil
}

// Require returns the stack for an integration test. Without a stack the test is skipped locally,
// but under CI (CI=true) a missing stack fails the test: CI must never pass by skipping.
func Require(tb testing.TB) *Env {
	tb.Helper()
	e, err := Load()
	if err == nil {
		err = e.reachable()
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("integration stack required under CI: %v", err)
		}
		tb.Skipf("integration test skipped: %v", err)
	}
	return e
}

// RequireModern returns the stack for a test of the modern engine (ch-modern), failing or
// skipping as Require does; a stack written before ch-modern existed counts as absent.
func RequireModern(tb testing.TB) *Env {
	tb.Helper()
	e := Require(tb)
	var err error
	if e.CHModernNative == "" || e.CHModernHTTP == "" {
		err = fmt.Errorf("%s has no STACK_CH_MODERN_NATIVE/STACK_CH_MODERN_HTTP: re-run `make stack-up` to start ch-modern", filepath.Join(e.Dir, "env"))
	} else {
		err = dialAll(e.Dir, map[string]string{"ch-modern": e.CHModernNative})
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("modern ClickHouse required under CI: %v", err)
		}
		tb.Skipf("modern integration test skipped: %v", err)
	}
	return e
}

// reachable dials the servers every test needs, so that an env file left by a stack that has
// since stopped skips (or, under CI, fails) the test at once instead of letting it hang on a
// dead port. Replicas 2 and 3 are not dialled: a test may be restarting them.
func (e *Env) reachable() error {
	addrs := map[string]string{"clickhouse replica 1": e.CHNative[0], "zookeeper": e.ZK}
	if u, err := url.Parse(e.PGDSN); err == nil {
		addrs["postgresql"] = u.Host
	}
	for _, kv := range strings.Split(e.AzureConnectionString, ";") {
		if v, ok := strings.CutPrefix(kv, "BlobEndpoint="); ok {
			if u, err := url.Parse(v); err == nil {
				addrs["azurite"] = u.Host
			}
		}
	}
	return dialAll(e.Dir, addrs)
}

func dialAll(dir string, addrs map[string]string) error {
	var down []string
	for name, addr := range addrs {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			down = append(down, fmt.Sprintf("%s (%s)", name, addr))
			continue
		}
		c.Close()
	}
	if len(down) > 0 {
		return fmt.Errorf("the stack in %s is not running (%s unreachable): run `make stack-up`", dir, strings.Join(down, ", "))
	}
	return nil
}

// parseEnvFile reads KEY=VALUE lines as written by stack.sh: values may be single- or
// double-quoted; no expansion is done.
func parseEnvFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open stack env: %w", err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
		}
		out[k] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read stack env %s: %w", path, err)
	}
	return out, nil
}

// Freezes lists the freezes tracevault has in the shadow/ directory of the ClickHouse disk at
// disk (FREEZE ... WITH NAME 'tracevault_...'): a backup removes each when done, so any left
// while no backup runs pins disk space that nothing else frees.
func Freezes(disk string) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(disk, "shadow"))
	if err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "tracevault_") {
			out = append(out, e.Name())
		}
	}
	return out, nil
}
