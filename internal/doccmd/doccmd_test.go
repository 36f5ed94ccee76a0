package doccmd

import (
	"fmt"
	"slices"
	"testing"
)

// TestBlocks: only sh blocks are read, indented ones too, each with its fence's line and the
// marker right before it.
func TestBlocks(t *testing.T) {
	md := "# Title\n\n<!-- runbook-test: one (a test) -->\n```sh\ntracevault check\n```\n\n" +
		"```toml\nnot = \"a command\"\n```\n" +
		"1. a step:\n\n   ```sh\n   tracevault list\n     --json\n   ```\n" +
		"<!-- runbook-test: two -->\n```yaml\nx: 1\n```\n```sh\nrun two\n```\n"
	got := Blocks("doc.md", md)
	want := []Block{
		{Doc: "doc.md", Line: 4, Marker: "one", Text: "tracevault check"},
		{Doc: "doc.md", Line: 13, Text: "tracevault list\n  --json"},
		{Doc: "doc.md", Line: 21, Text: "run two"}, // the marker named the yaml block
	}
	if !slices.Equal(got, want) {
		t.Errorf("Blocks\n got %+v\nwant %+v", got, want)
	}
}

// TestCommands: a block splits into the commands a reader would copy, each as a shell runs it
// (Text), as written (Raw) and with the words its `# prints` comment promises, so that the
// runbook tests run each as written and check what it prints.
func TestCommands(t *testing.T) {
	tests := []struct {
		name, block string
		want        []string // each command's Text
		raw         []string // each command's Raw, when the case checks it
		prints      [][]string
	}{
		{name: "comments dropped", block: "tracevault list   # newest first\n# a note\ntracevault check",
			want: []string{"tracevault list", "tracevault check"}},
		{name: "a # inside quotes stays", block: "tracevault backup --tag 'a #1'",
			want: []string{"tracevault backup --tag 'a #1'"}},
		{name: "continuation", block: "helm template tv x \\\n  --set a=b",
			want: []string{"helm template tv x --set a=b"}},
		{name: "pipe at the end of a line", block: "jq -r . pg.json |\n  psql -d x",
			want: []string{"jq -r . pg.json | psql -d x"}},
		{name: "indented line continues", block: "while read -r o; do\n  obj \"$o\"\ndone",
			want: []string{"while read -r o; do obj \"$o\"", "done"}},
		{name: "here-document", block: "cat > target.toml <<'EOF'\n[storage]\nurl = \"x\" # kept\nEOF\ntracevault config check target.toml",
			want: []string{"cat > target.toml <<'EOF'\n[storage]\nurl = \"x\" # kept\nEOF", "tracevault config check target.toml"}},
		{name: "here-document, continued line and prints, as written",
			block:  "cat > f <<'EOF'\nx = \"<A>\"\nEOF\n# a comment\nrun one \\\n  --flag   # prints \"done\" and \"ok\"\nrun two",
			want:   []string{"cat > f <<'EOF'\nx = \"<A>\"\nEOF", "run one --flag", "run two"},
			raw:    []string{"cat > f <<'EOF'\nx = \"<A>\"\nEOF", "run one \\\n  --flag   # prints \"done\" and \"ok\"", "run two"},
			prints: [][]string{nil, {"done", "ok"}, nil}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmds := Commands(tt.block)
			var text, raw []string
			var prints [][]string
			for _, c := range cmds {
				text, raw, prints = append(text, c.Text), append(raw, c.Raw), append(prints, c.Prints)
			}
			if !slices.Equal(text, tt.want) {
				t.Errorf("Commands(%q) Text\n got %q\nwant %q", tt.block, text, tt.want)
			}
			if tt.raw != nil && !slices.Equal(raw, tt.raw) {
				t.Errorf("Commands(%q) Raw\n got %q\nwant %q", tt.block, raw, tt.raw)
			}
			if tt.prints != nil && fmt.Sprint(prints) != fmt.Sprint(tt.prints) {
				t.Errorf("Commands(%q) Prints\n got %q\nwant %q", tt.block, prints, tt.prints)
			}
		})
	}
}
