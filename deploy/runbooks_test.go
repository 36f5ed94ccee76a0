package deploy

import (
	"slices"
	"testing"
)

// TestShellCommands: a runbook's block splits into the commands a reader would copy, so that
// the runbook test runs each as written.
func TestShellCommands(t *testing.T) {
	tests := []struct {
		name, block string
		want        []string
	}{
		{"comments dropped", "tracevault list   # newest first\n# a note\ntracevault check", []string{"tracevault list", "tracevault check"}},
		{"a # inside quotes stays", "tracevault backup --tag 'a #1'", []string{"tracevault backup --tag 'a #1'"}},
		{"continuation", "helm template tv x \\\n  --set a=b", []string{"helm template tv x --set a=b"}},
		{"pipe at the end of a line", "jq -r . pg.json |\n  psql -d x", []string{"jq -r . pg.json | psql -d x"}},
		{"indented line continues", "while read -r o; do\n  obj \"$o\"\ndone", []string{"while read -r o; do obj \"$o\"", "done"}},
		{"here-document", "cat > target.toml <<'EOF'\n[storage]\nurl = \"x\" # kept\nEOF\ntracevault config check target.toml",
			[]string{"cat > target.toml <<'EOF'\n[storage]\nurl = \"x\" # kept\nEOF", "tracevault config check target.toml"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := shellCommands(tt.block); !slices.Equal(got, tt.want) {
				t.Errorf("shellCommands(%q)\n got %q\nwant %q", tt.block, got, tt.want)
			}
		})
	}
}
