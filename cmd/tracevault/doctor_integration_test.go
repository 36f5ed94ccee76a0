package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tracevault/tracevault/internal/devstack"
)

// TestDoctorAndPruneInAppendOnlyMode drives issue 29 through the CLI on Azurite: with an rcl SAS
// and append_only, init creates the repository, doctor finds overwrite and delete refused
// (exit 0) and prune refuses naming the separate identity (exit 1); the same configuration with
// the account key makes doctor report both as problems (exit 1).
func TestDoctorAndPruneInAppendOnlyMode(t *testing.T) {
	env := devstack.Require(t)
	sc := env.ScratchSASContainer(t, "doctor", "rcl")
	name, endpoint, sas := sc.Name, sc.Endpoint, sc.SAS
	dir := t.TempDir()
	write := func(file, creds string) string {
		p := filepath.Join(dir, file)
		toml := fmt.Sprintf("[storage]\nurl = \"azblob://%s/repo\"\nappend_only = true\n%s", name, creds)
		if err := os.WriteFile(p, []byte(toml), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	rcl := write("rcl.toml", fmt.Sprintf("endpoint = %q\nsas_token = %q\n", endpoint, sas))
	key := write("key.toml", fmt.Sprintf("connection_string = %q\n", env.AzureConnectionString))

	steps := []struct {
		name     string
		args     []string
		code     int
		stdout   []string
		stderr   []string
		noSecret bool
	}{
		{"init with the rcl SAS", []string{"--config", rcl, "init"}, 0, nil, nil, true},
		{"doctor with the rcl SAS", []string{"--config", rcl, "doctor"}, 0, []string{"overwrite refused", "delete    refused"}, nil, true},
		{"prune with the rcl SAS", []string{"--config", rcl, "prune"}, 1, nil, []string{"append-only", "separate identity"}, true},
		{"delete with the rcl SAS", []string{"--config", rcl, "delete", "20261206T030000Z-1a2b3c"}, 1, nil, []string{"append-only", "separate identity"}, true},
		{"doctor with the account key", []string{"--config", key, "doctor"}, 1, []string{"overwrite ALLOWED", "delete    ALLOWED", "problem:"}, nil, false},
	}
	for _, st := range steps {
		code, out, errs := runCLI(st.args...)
		if code != st.code {
			t.Errorf("%s: exit %d, want %d\n%s\n%s", st.name, code, st.code, out, errs)
		}
		for _, w := range st.stdout {
			if !strings.Contains(out, w) {
				t.Errorf("%s: stdout lacks %q:\n%s", st.name, w, out)
			}
		}
		for _, w := range st.stderr {
			if !strings.Contains(errs, w) {
				t.Errorf("%s: stderr lacks %q:\n%s", st.name, w, errs)
			}
		}
		if sig := sasSignature(sas); st.noSecret && sig != "" && strings.Contains(out+errs, sig) {
			t.Errorf("%s: the SAS signature was printed", st.name)
		}
	}
}

func sasSignature(sas string) string {
	for _, kv := range strings.Split(sas, "&") {
		if v, ok := strings.CutPrefix(kv, "sig="); ok {
			return v
		}
	}
	return ""
}
