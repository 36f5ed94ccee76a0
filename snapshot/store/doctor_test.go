package store

import (
	"context"
	"strings"
	"testing"

	"github.com/tracevault/tracevault/internal/devstack"
)

// TestProbeProtection: the doctor probes what the storage enforces. Against Azurite with a
// container SAS "rcl" the overwrite and the delete are refused and an append-only repository has
// no problem; with the account key both succeed, which in append-only mode is a problem per probe;
// a directory lets both through and says append_only is advisory there.
func TestProbeProtection(t *testing.T) {
	env := devstack.Require(t)
	ctx := context.Background()
	tests := []struct {
		name       string
		backend    func(t *testing.T) Backend
		appendOnly bool
		allowed    bool // overwrite and delete went through
		problems   int
		note       string
	}{
		{"azurite rcl sas, append-only", func(t *testing.T) Backend { return rclBackend(t, env) }, true, false, 0, ""},
		{"azurite rcl sas, not append-only", func(t *testing.T) Backend { return rclBackend(t, env) }, false, false, 0, "set [storage] append_only"},
		{"azurite account key, append-only", func(t *testing.T) Backend { return openAzurite(t, AzureOptions{}) }, true, true, 2, ""},
		{"azurite account key, not append-only", func(t *testing.T) Backend { return openAzurite(t, AzureOptions{}) }, false, true, 0, "can overwrite and delete"},
		{"directory, append-only", func(t *testing.T) Backend {
			b, err := NewFS(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			return b
		}, true, true, 2, "advisory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := openRepo(t, tt.backend(t), Options{AppendOnly: tt.appendOnly})
			rep, err := r.ProbeProtection(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Probes) != 3 || !rep.Probes[0].Allowed || !strings.HasPrefix(rep.Canary, "doctor/") {
				t.Fatalf("report %+v: want the canary created under doctor/ and three probes", rep)
			}
			for _, p := range rep.Probes[1:] {
				if p.Allowed != tt.allowed {
					t.Errorf("%s: allowed %v (%s), want %v", p.Probe, p.Allowed, p.Detail, tt.allowed)
				}
				if strings.Contains(p.Detail, "sig=") {
					t.Errorf("%s: the detail holds the SAS: %s", p.Probe, p.Detail)
				}
			}
			if len(rep.Problems) != tt.problems {
				t.Errorf("problems %q, want %d", rep.Problems, tt.problems)
			}
			if tt.note != "" && !strings.Contains(strings.Join(rep.Notes, "\n"), tt.note) {
				t.Errorf("notes %q, want one saying %q", rep.Notes, tt.note)
			}
			// Azurite has no immutability: the container's flags say so where they are readable.
			if _, az := rawBackend(r.b).(*Azure); az {
				notes := strings.Join(rep.Notes, "\n")
				if !strings.Contains(notes, "no immutability policy") && !strings.Contains(notes, "unreadable") {
					t.Errorf("notes %q: want the container's immutability read or named unreadable", rep.Notes)
				}
				t.Logf("immutability %+v", rep.Immutability)
			}
		})
	}
}

// rclBackend is a fresh Azurite container reached through a container SAS "rcl", the append-only
// daemon's credential, with a repository initialised in it.
func rclBackend(t *testing.T, env *devstack.Env) Backend {
	t.Helper()
	admin := openAzurite(t, AzureOptions{}).(*Azure)
	endpoint, token, err := env.AzureContainerSAS(admin.opts.Container, "rcl")
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewAzure(context.Background(), AzureOptions{Endpoint: endpoint, SASToken: token, Container: admin.opts.Container, Prefix: "repo"})
	if err != nil {
		t.Fatal(err)
	}
	return b
}
