package doccmd

import (
	"regexp"
	"strings"
)

// Block is one ```sh block of a Markdown file.
type Block struct {
	Doc    string // the file, as the caller named it
	Line   int    // the line of the opening fence, from 1
	Marker string // NAME of a `<!-- runbook-test: NAME` comment right before the block, if any
	Text   string // the body as written, less the fence's indentation
}

// Command is one command of a block.
type Command struct {
	// Text is the command as a shell runs it: continued lines joined with a space (the \
	// dropped), comments dropped, a here-document's body kept line by line as written.
	Text string
	// Raw is the command's lines as written, comments kept.
	Raw string
	// Prints are the quoted words of a `# prints "…"` comment on its lines: what its output
	// holds.
	Prints []string
}

var (
	fence        = regexp.MustCompile("^( *)```([a-z]*)\\s*$")
	markerBefore = regexp.MustCompile(`<!-- runbook-test: ([a-z-]+)`)
	hereDoc      = regexp.MustCompile(`<<-?'?([A-Za-z_]+)'?\s*$`)
	prints       = regexp.MustCompile(`\s#\s+prints\s+(.*)$`)
	quoted       = regexp.MustCompile(`"([^"]*)"`)
)

// Blocks returns the sh blocks of the Markdown text md, from the file doc, in order.
func Blocks(doc, md string) []Block {
	var out []Block
	lines := strings.Split(md, "\n")
	marker := ""
	for i := 0; i < len(lines); i++ {
		if m := markerBefore.FindStringSubmatch(lines[i]); m != nil {
			marker = m[1]
		}
		m := fence.FindStringSubmatch(lines[i])
		if m == nil {
			continue
		}
		indent, info := m[1], m[2]
		var body []string
		start := i + 1
		for i++; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
			body = append(body, strings.TrimPrefix(lines[i], indent))
		}
		if info == "sh" {
			out = append(out, Block{Doc: doc, Line: start, Marker: marker, Text: strings.Join(body, "\n")})
		}
		marker = "" // a marker names the block right after it only
	}
	return out
}

// Commands returns the block's commands in order.
func (b Block) Commands() []Command { return Commands(b.Text) }

// Commands splits a block's text into commands as a reader would copy them: a line ending in \
// or |, and an indented line, continue the command before; a here-document runs to its
// terminator; a comment is dropped.
func Commands(block string) []Command {
	var cmds []Command
	cont := false
	heredoc := "" // the terminator of a here-document being read
	for _, line := range strings.Split(block, "\n") {
		if heredoc != "" {
			c := &cmds[len(cmds)-1]
			c.Text += "\n" + line
			c.Raw += "\n" + line
			if strings.TrimSpace(line) == heredoc {
				heredoc = ""
			}
			continue
		}
		code := StripComment(line)
		if strings.TrimSpace(code) == "" {
			continue
		}
		if m := hereDoc.FindStringSubmatch(code); m != nil {
			heredoc = m[1]
		}
		indented := strings.HasPrefix(code, " ")
		code = strings.TrimSpace(code)
		if (cont || indented) && len(cmds) > 0 {
			c := &cmds[len(cmds)-1]
			c.Text += " " + code
			c.Raw += "\n" + line
		} else {
			cmds = append(cmds, Command{Text: code, Raw: line})
		}
		c := &cmds[len(cmds)-1]
		cont = strings.HasSuffix(code, "\\") || strings.HasSuffix(code, "|")
		if strings.HasSuffix(code, "\\") {
			c.Text = strings.TrimSpace(strings.TrimSuffix(c.Text, "\\"))
		}
	}
	for i := range cmds {
		cmds[i].Prints = printed(cmds[i].Raw)
	}
	return cmds
}

// printed returns the quoted words of the `# prints "…"` comments in lines.
func printed(lines string) []string {
	var words []string
	for _, l := range strings.Split(lines, "\n") {
		if m := prints.FindStringSubmatch(l); m != nil {
			for _, q := range quoted.FindAllStringSubmatch(m[1], -1) {
				words = append(words, q[1])
			}
		}
	}
	return words
}

// StripComment drops a # comment that starts a line or follows a space outside quotes.
func StripComment(line string) string {
	var quote rune
	for i, r := range line {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			}
		case r == '\'' || r == '"':
			quote = r
		case r == '#' && (i == 0 || line[i-1] == ' '):
			return line[:i]
		}
	}
	return line
}
