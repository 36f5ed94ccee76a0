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

	dec := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		var strict *toml.StrictMissingError
		var de *toml.DecodeError
		switch {
		case errors.As(err, &strict):
			// The document decoded; only unknown keys remain. Report them and keep validating.
			for _, e := range strict.Errors {
				c.unknownKey(&e)
			}
		case errors.As(err, &de):
			// A wrong type stops the decoder, so later checks would see half a file.
			row, _ := de.Position()
			return nil, Problems{{File: name, Line: row, Key: strings.Join(de.Key(), "."), Message: typeMessage(de)}}
		default:
			return nil, fmt.Errorf("decode config %s: %w", name, err)
		}
	}
	for i := range cfg.Jobs {
		cfg.Jobs[i].applyDefaults()
	}
	c.resolveSecrets(&cfg)
	c.validate(&cfg)
	if len(c.problems) > 0 {
		// In file order; keys absent from the file (line 0) last.
		sort.SliceStable(c.problems, func(i, j int) bool {
			li, lj := c.problems[i].Line, c.problems[j].Line
			return li != 0 && (lj == 0 || li < lj)
		})
		return nil, c.problems
	}
	return &cfg, nil
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
