package main

import (
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// TestHelpExamplesExpandVariables: an example a reader pastes must expand its shell variables,
// so none may sit inside single quotes, where sh keeps `$TOKEN` literally and the daemon
// answers 401 (serve --help's curl example once did). The cases show the check can fail.
func TestHelpExamplesExpandVariables(t *testing.T) {
	for _, tc := range []struct {
		example string
		ok      bool
	}{
		{`curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8480/`, true},
		{`curl -H 'Authorization: Bearer $TOKEN' http://127.0.0.1:8480/`, false},
		{`tracevault backup --tables 'default.*'`, true},
	} {
		if got := len(literalVariables(tc.example)) == 0; got != tc.ok {
			t.Errorf("literalVariables(%q) judged ok=%v, want %v", tc.example, got, tc.ok)
		}
	}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, v := range literalVariables(c.Example) {
			t.Errorf("%s --help: %s is single-quoted, so sh never expands it", c.CommandPath(), v)
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newApp().rootCommand())
}

var singleQuoted = regexp.MustCompile(`'[^'\n]*'`)

// literalVariables are the single-quoted words of a text that hold a $NAME.
func literalVariables(text string) []string {
	var out []string
	for _, q := range singleQuoted.FindAllString(text, -1) {
		if regexp.MustCompile(`\$[A-Za-z_{]`).MatchString(q) {
			out = append(out, strings.TrimSpace(q))
		}
	}
	return out
}
