package docs

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"regexp"
	"sort"
	"strings"
	"testing"
	"testing/fstest"
	"unicode"
)

// markdownFiles are the files whose relative links must resolve, as globs from the repository root.
var markdownFiles = []string{
	"README.md",
	"CONTRIBUTING.md",
	"CHANGELOG.md",
	"docs/*.md",
	"deploy/README.md",
	"bench/*.md",
}

var (
	// linkTarget matches the target of an inline link or image: ](target) or ](target "title").
	linkTarget = regexp.MustCompile(`\]\(\s*<?([^)\s>]*)>?(?:\s+"[^"]*")?\s*\)`)
	// refDefinition matches a reference definition: [name]: target.
	refDefinition = regexp.MustCompile(`^\s{0,3}\[[^\]]+\]:\s*<?([^\s>]+)>?`)
	codeSpan      = regexp.MustCompile("(`+)[^`]*?(`+)")
	heading       = regexp.MustCompile(`^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$`)
	inlineLink    = regexp.MustCompile(`!?\[([^\]]*)\]\([^)]*\)`)
	scheme        = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9+.-]*:`)
)

// prose returns the lines of a Markdown file outside fenced code blocks, each with its 1-based
// line number.
func prose(text string) (lines []string, numbers []int) {
	fence := ""
	for i, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimLeft(line, " \t")
		if fence != "" {
			if strings.HasPrefix(trimmed, fence) && strings.Trim(trimmed, fence[:1]+" \t") == "" {
				fence = ""
			}
			continue
		}
		if strings.HasPrefix(trimmed, "```") || strings.HasPrefix(trimmed, "~~~") {
			n := len(trimmed) - len(strings.TrimLeft(trimmed, trimmed[:1]))
			fence = strings.Repeat(trimmed[:1], n)
			continue
		}
		lines = append(lines, line)
		numbers = append(numbers, i+1)
	}
	return lines, numbers
}

// slug is GitHub's anchor for a heading's text: the text as rendered (links by their text, code
// without its backticks), lower case, without anything but letters, marks, digits, connector
// punctuation, spaces and hyphens, and spaces turned into hyphens.
func slug(text string) string {
	text = inlineLink.ReplaceAllString(text, "$1")
	var b strings.Builder
	for _, r := range strings.ToLower(text) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || unicode.IsLetter(r) || unicode.Is(unicode.M, r) || unicode.IsNumber(r) || unicode.Is(unicode.Pc, r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// anchors returns the anchors of a Markdown file's headings, a repeated one numbered as GitHub
// numbers it (x, x-1, x-2).
func anchors(text string) map[string]bool {
	out := map[string]bool{}
	seen := map[string]int{}
	lines, _ := prose(text)
	for _, line := range lines {
		m := heading.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		s := slug(m[2])
		if n := seen[s]; n > 0 {
			out[fmt.Sprintf("%s-%d", s, n)] = true
		} else {
			out[s] = true
		}
		seen[s]++
	}
	return out
}

// links returns the link targets of a Markdown file outside code, each with its line number.
func links(text string) (targets []string, numbers []int) {
	lines, nums := prose(text)
	for i, line := range lines {
		line = codeSpan.ReplaceAllStringFunc(line, func(s string) string { return strings.Repeat(" ", len(s)) })
		for _, m := range linkTarget.FindAllStringSubmatch(line, -1) {
			targets = append(targets, m[1])
			numbers = append(numbers, nums[i])
		}
		if m := refDefinition.FindStringSubmatch(line); m != nil {
			targets = append(targets, m[1])
			numbers = append(numbers, nums[i])
		}
	}
	return targets, numbers
}

// checkLinks returns one problem for every relative link in files (paths in fsys) that names no
// existing file or directory, or whose #anchor names no heading of the Markdown file it points at.
// Links with a scheme (https:, mailto:) are not checked.
func checkLinks(fsys fs.FS, files []string) ([]string, error) {
	var problems []string
	texts := map[string]string{}
	read := func(name string) (string, error) {
		if t, ok := texts[name]; ok {
			return t, nil
		}
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return "", err
		}
		texts[name] = string(b)
		return texts[name], nil
	}
	for _, file := range files {
		text, err := read(file)
		if err != nil {
			return nil, err
		}
		targets, numbers := links(text)
		for i, target := range targets {
			if target == "" || scheme.MatchString(target) {
				continue
			}
			where := fmt.Sprintf("%s:%d: %s", file, numbers[i], target)
			name, anchor, _ := strings.Cut(target, "#")
			name, _, _ = strings.Cut(name, "?")
			resolved := file
			if name != "" {
				resolved = path.Join(path.Dir(file), name)
				if strings.HasPrefix(name, "/") || !fs.ValidPath(resolved) {
					problems = append(problems, where+": leaves the repository")
					continue
				}
				if _, err := fs.Stat(fsys, resolved); err != nil {
					problems = append(problems, where+": no such file")
					continue
				}
			}
			if anchor == "" || !strings.HasSuffix(resolved, ".md") {
				continue
			}
			t, err := read(resolved)
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s: %v", where, err))
				continue
			}
			if !anchors(t)[anchor] {
				problems = append(problems, where+": no heading with this anchor in "+resolved)
			}
		}
	}
	return problems, nil
}

func TestCheckLinks(t *testing.T) {
	fsys := fstest.MapFS{
		"README.md":        {Data: []byte("# tracevault\n\n## Not yet\n\n## Blob storage: `[blobs]`\n\n## Usage\n\n## Usage\n")},
		"docs/a.md":        {Data: []byte("# A\n\n## The daemon: schedules, several daemons, metrics\n\n```sh\n# not a heading\n```\n")},
		"bench/RESULTS.md": {Data: []byte("x")},
		"config.toml":      {Data: []byte("x")},
	}
	for _, tc := range []struct {
		name, text string
		problems   int
	}{
		{"a file beside", "[c](../config.toml)", 0},
		{"a file in another folder", "see [r](../bench/RESULTS.md).", 0},
		{"a directory", "[d](../bench/)", 0},
		{"an anchor in another file", "[n](../README.md#not-yet)", 0},
		{"an anchor from a heading with code and punctuation", "[b](../README.md#blob-storage-blobs)", 0},
		{"a repeated heading's second anchor", "[u](../README.md#usage-1)", 0},
		{"an anchor in the same file", "[d](#the-daemon-schedules-several-daemons-metrics)", 0},
		{"a link with a title", `[c](../config.toml "the config")`, 0},
		{"a reference definition", "[c]: ../config.toml", 0},
		{"external links are not checked", "[l](https://langfuse.com) [m](mailto:x@y.z)", 0},
		{"links in code are not checked", "`[x](gone.md)`\n\n```\n[x](gone.md)\n```", 0},
		{"a dead link", "[x](gone.md)", 1},
		{"a dead link beside a good one", "[c](../config.toml) and [x](../bench/GONE.md)", 1},
		{"a dead reference definition", "[x]: gone.md", 1},
		{"a dead anchor", "[n](../README.md#not-now)", 1},
		{"a heading inside a code block is no anchor", "[n](#not-a-heading)", 1},
		{"a third repeated heading that does not exist", "[u](../README.md#usage-2)", 1},
		{"a link out of the repository", "[x](../../etc/passwd)", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tree := fstest.MapFS{}
			for k, v := range fsys {
				tree[k] = v
			}
			// A same-file anchor points at docs/a.md's headings, so b.md gets them too.
			text := tc.text + "\n"
			if strings.Contains(tc.text, "(#") {
				text += "\n" + string(fsys["docs/a.md"].Data)
			}
			tree["docs/b.md"] = &fstest.MapFile{Data: []byte(text)}
			problems, err := checkLinks(tree, []string{"docs/b.md"})
			if err != nil {
				t.Fatal(err)
			}
			if len(problems) != tc.problems {
				t.Errorf("%d problems, want %d: %q", len(problems), tc.problems, problems)
			}
		})
	}
}

func TestSlug(t *testing.T) {
	for text, want := range map[string]string{
		"Not yet":                           "not-yet",
		"Blob storage: `[blobs]`":           "blob-storage-blobs",
		"Restore drills: `drill`":           "restore-drills-drill",
		"The cut":                           "the-cut",
		"Point-in-time recovery":            "point-in-time-recovery",
		"See [the page](x.md) now":          "see-the-page-now",
		"Export modes: `[clickhouse] mode`": "export-modes-clickhouse-mode",
		"1× → 4× data":                      "1--4-data",
	} {
		if got := slug(text); got != want {
			t.Errorf("slug(%q) = %q, want %q", text, got, want)
		}
	}
}

// TestRepositoryLinks checks every relative link of the project's Markdown files.
func TestRepositoryLinks(t *testing.T) {
	root := os.DirFS("..")
	var files []string
	for _, glob := range markdownFiles {
		matches, err := fs.Glob(root, glob)
		if err != nil {
			t.Fatal(err)
		}
		if len(matches) == 0 {
			t.Errorf("no file matches %s", glob)
		}
		files = append(files, matches...)
	}
	sort.Strings(files)
	problems, err := checkLinks(root, files)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Error(p)
	}
}
