package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// Problem is one thing wrong with a configuration file.
type Problem struct {
	File    string `json:"file"`
	Line    int    `json:"line,omitempty"` // 0 when the key is absent from the file
	Key     string `json:"key"`
	Message string `json:"message"`
}

func (p Problem) String() string {
	loc := p.File
	if p.Line > 0 {
		loc = fmt.Sprintf("%s:%d", p.File, p.Line)
	}
	return fmt.Sprintf("%s: %s: %s", loc, p.Key, p.Message)
}

// Problems is every problem found in one file; it is the error Load returns for a bad file.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Load reads, decodes and validates the file at path. A bad file yields Problems; an unreadable
// one a plain error.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("read config %s: file not found; pass --config FILE or set TRACEVAULT_CONFIG (see config.example.toml)", path)
		}
		return nil, fmt.Errorf("read config %s: %w", path, err)
	}
	return Parse(path, data)
}

// Parse decodes and validates a configuration held in memory; name is used in messages.
func Parse(name string, data []byte) (*Config, error) {
	cfg := Defaults()
	cfg.File = name
	lines, syntaxErr := keyLines(data)
	if syntaxErr != nil {
		return nil, Problems{syntaxProblem(name, syntaxErr)}
	}
	c := &checker{file: name, lines: lines}

	// A wrong type stops go-toml's decoder at that key, which would hide every later problem
	// (config check promises them all at once). So each mistyped key is reported, blanked out
	// of the text (lines kept, so positions stay true) and the document decoded again.
	doc := data
	for {
		cfg = Defaults()
		cfg.File = name
		err := toml.NewDecoder(bytes.NewReader(doc)).DisallowUnknownFields().Decode(&cfg)
		if err == nil {
			break
		}
		var strict *toml.StrictMissingError
		var de *toml.DecodeError
		if errors.As(err, &strict) {
			// The document decoded; only unknown keys remain. Report them and keep validating.
			for _, e := range strict.Errors {
				c.unknownKey(&e)
			}
			break
		}
		if !errors.As(err, &de) {
			return nil, fmt.Errorf("decode config %s: %w", name, err)
		}
		row, _ := de.Position()
		key, rest, ok := blankKeyAt(doc, row)
		if !ok {
			// Not a plain key = value (a table header, say): report it with what was found so far.
			c.problems = append(c.problems, Problem{File: name, Line: row, Key: strings.Join(de.Key(), "."), Message: typeMessage(de)})
			return nil, c.sorted()
		}
		c.problems = append(c.problems, Problem{File: name, Line: row, Key: key, Message: typeMessage(de)})
		doc = rest
	}
	for i := range cfg.Jobs {
		cfg.Jobs[i].applyDefaults()
	}
	c.resolveSecrets(&cfg)
	c.validate(&cfg)
	if len(c.problems) > 0 {
		return nil, c.sorted()
	}
	return &cfg, nil
}

// sorted returns the problems in file order; keys absent from the file (line 0) last.
func (c *checker) sorted() Problems {
	sort.SliceStable(c.problems, func(i, j int) bool {
		li, lj := c.problems[i].Line, c.problems[j].Line
		return li != 0 && (lj == 0 || li < lj)
	})
	return c.problems
}

// blankKeyAt finds the key = value written at line row (1-based) and returns its key, named as
// keyLines names it ("jobs[1].parallel"), and data with that key and value replaced by spaces,
// newlines kept. ok is false when row holds no key = value, e.g. a table header.
func blankKeyAt(data []byte, row int) (key string, out []byte, ok bool) {
	var p unstable.Parser
	p.Reset(data)
	arrays := map[string]int{}
	table := ""
	start, end := -1, len(data) // byte offsets of the key = value at row, up to the next expression
	for p.NextExpression() {
		e := p.Expression()
		name, first := dottedKey(e.Key())
		if first == nil {
			continue
		}
		r := p.Range(first.Data)
		line := p.Shape(r).Start.Line
		if start >= 0 {
			if line > row {
				// Blank whole lines up to the next expression, so a multi-line value goes too.
				end = bytes.LastIndexByte(data[:r.Offset], '\n') + 1
				break
			}
			start = -1 // a later expression still starts at or before row
		}
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			if e.Kind == unstable.ArrayTable {
				idx := arrays[name]
				arrays[name]++
				name = fmt.Sprintf("%s[%d]", name, idx)
			}
			table = name
		case unstable.KeyValue:
			if line <= row {
				start, key = int(r.Offset), name
				if table != "" {
					key = table + "." + name
				}
			}
		}
	}
	if start < 0 || p.Error() != nil || end <= start {
		return "", nil, false
	}
	out = bytes.Clone(data)
	for i := start; i < end; i++ {
		if out[i] != '\n' && out[i] != '\r' {
			out[i] = ' '
		}
	}
	return key, out, true
}

// checker collects problems and knows on which line each key was written.
type checker struct {
	file     string
	lines    map[string]int
	problems Problems
}

// add records a problem; only the first per key is kept, since later checks of a key that is
// already wrong (an unset env secret, say) would only repeat it.
func (c *checker) add(key, format string, args ...any) {
	for _, p := range c.problems {
		if p.Key == key {
			return
		}
	}
	c.problems = append(c.problems, Problem{File: c.file, Line: c.line(key), Key: key, Message: fmt.Sprintf(format, args...)})
}

// line finds the key's line, falling back to its table's header for keys the file left out.
func (c *checker) line(key string) int {
	for k := key; k != ""; {
		if l, ok := c.lines[k]; ok {
			return l
		}
		i := strings.LastIndexAny(k, ".[")
		if i < 0 {
			return 0
		}
		k = k[:i]
	}
	return 0
}

func (c *checker) unknownKey(e *toml.DecodeError) {
	row, _ := e.Position()
	key := strings.Join(e.Key(), ".")
	c.problems = append(c.problems, Problem{File: c.file, Line: row, Key: key,
		Message: "unknown key; see config.example.toml for the keys each section allows"})
}

var wrongType = regexp.MustCompile(`cannot decode TOML (\w+) into .* of type (\S+)`)

// typeMessage turns go-toml's Go-flavoured message into one about TOML values.
func typeMessage(de *toml.DecodeError) string {
	msg := strings.TrimPrefix(de.Error(), "toml: ")
	m := wrongType.FindStringSubmatch(msg)
	if m == nil {
		return msg
	}
	want := map[string]string{"[]string": "a list of strings, e.g. [\"a\", \"b\"]", "int": "an integer", "bool": "true or false"}[m[2]]
	if want == "" {
		want = "a string"
	}
	return fmt.Sprintf("is a TOML %s but must be %s (see config.example.toml)", m[1], want)
}

func syntaxProblem(name string, err error) Problem {
	var de *toml.DecodeError
	if errors.As(err, &de) {
		row, _ := de.Position()
		return Problem{File: name, Line: row, Key: strings.Join(de.Key(), "."), Message: "TOML syntax error: " + strings.TrimPrefix(de.Error(), "toml: ")}
	}
	return Problem{File: name, Key: "(file)", Message: "TOML syntax error: " + err.Error()}
}

// keyLines maps every key to the line it is written on: "storage.url", "jobs[1].schedule".
// Validation errors then point at the line to edit, which go-toml only does for decode errors.
func keyLines(data []byte) (map[string]int, error) {
	// A syntax error from the AST parser lacks a position; the decoder reports it with one.
	var probe map[string]any
	if err := toml.Unmarshal(data, &probe); err != nil {
		return nil, err
	}
	var p unstable.Parser
	p.Reset(data)
	lines := map[string]int{}
	arrays := map[string]int{}
	table := ""
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			name, first := dottedKey(e.Key())
			if e.Kind == unstable.ArrayTable {
				idx := arrays[name]
				arrays[name]++
				name = fmt.Sprintf("%s[%d]", name, idx)
			}
			table = name
			lines[table] = p.Shape(p.Range(first.Data)).Start.Line
		case unstable.KeyValue:
			name, first := dottedKey(e.Key())
			if table != "" {
				name = table + "." + name
			}
			lines[name] = p.Shape(p.Range(first.Data)).Start.Line
		}
	}
	return lines, p.Error()
}

func dottedKey(it unstable.Iterator) (string, *unstable.Node) {
	var parts []string
	var first *unstable.Node
	for it.Next() {
		n := it.Node()
		if first == nil {
			first = n
		}
		parts = append(parts, string(n.Data))
	}
	return strings.Join(parts, "."), first
}

var envRef = regexp.MustCompile(`^(?:env:([A-Za-z_][A-Za-z0-9_]*)|\$\{([A-Za-z_][A-Za-z0-9_]*)\})$`)

// resolveSecrets replaces "env:NAME" and "${NAME}" in secret fields with the variable's value.
func (c *checker) resolveSecrets(cfg *Config) {
	fields := []struct {
		key string
		s   *Secret
	}{
		{"storage.connection_string", &cfg.Storage.ConnectionString},
		{"storage.account_key", &cfg.Storage.AccountKey},
		{"storage.sas_token", &cfg.Storage.SASToken},
		{"storage.encryption.passphrase", &cfg.Storage.Encryption.Passphrase},
		{"blobs.connection_string", &cfg.Blobs.ConnectionString},
		{"blobs.account_key", &cfg.Blobs.AccountKey},
		{"blobs.sas_token", &cfg.Blobs.SASToken},
		{"langfuse.admin_api_key", &cfg.Langfuse.AdminAPIKey},
		{"postgres.dsn", &cfg.Postgres.DSN},
		{"clickhouse.password", &cfg.ClickHouse.Password},
		{"zookeeper.identity", &cfg.ZooKeeper.Identity},
		{"web.token", &cfg.Web.Token},
	}
	for _, f := range fields {
		m := envRef.FindStringSubmatch(string(*f.s))
		if m == nil {
			continue
		}
		name := m[1] + m[2]
		v, ok := os.LookupEnv(name)
		if !ok {
			c.add(f.key, "environment variable %s is not set; export it or write the value in the file", name)
			continue
		}
		*f.s = Secret(v)
	}
}
