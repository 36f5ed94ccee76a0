// Rewriting a table's engine for another cluster's topology: a cluster migration replays the
// source's statements on a target that replicates differently (one server without ZooKeeper,
// or replicas with their own Keeper path and macros).

package clickhouse

import (
	"fmt"
	"strings"
)

// Topology is how a cluster migration's target replicates its MergeTree tables.
type Topology struct {
	// Replicated makes every MergeTree-family engine Replicated*; false makes them all plain.
	Replicated bool `json:"replicated"`
	// ZooKeeperPath is the replication path of a table on the target: {database} and {table}
	// are filled in here (18.16 does not expand them), other macros ({shard}, {layer}) are left
	// for each target server to expand.
	ZooKeeperPath string `json:"zookeeper_path,omitempty"`
	// Replica is the replica name argument, a macro such as {replica}.
	Replica string `json:"replica,omitempty"`
}

// DefaultZooKeeperPath is the path template Langfuse's own migrations write.
const DefaultZooKeeperPath = "/clickhouse/tables/{shard}/{database}/{table}"

// TopologyFor is the topology of a target from its macros: replicated targets register each
// table under the shard macro when the servers define one, and name replicas by {replica}.
func TopologyFor(replicated bool, macros map[string]string) (*Topology, error) {
	t := &Topology{Replicated: replicated}
	if !replicated {
		return t, nil
	}
	if _, ok := macros["replica"]; !ok {
		return nil, fmt.Errorf("the target replicates but its servers define no {replica} macro (system.macros): define one per server")
	}
	t.ZooKeeperPath, t.Replica = DefaultZooKeeperPath, "{replica}"
	if _, ok := macros["shard"]; !ok {
		t.ZooKeeperPath = "/clickhouse/tables/{database}/{table}"
	}
	return t, nil
}

// engineClause is a statement's top-level ENGINE = Name(args), located in its body.
type engineClause struct {
	start, end int // of the whole clause in the body
	name       string
	args       []string // each argument as written, trimmed
	parens     bool     // the clause had an argument list, even an empty one
}

// findEngine parses the first top-level ENGINE clause of a body (a materialized view's inner
// engine is at top level too). ok is false when the body has none.
func findEngine(body string) (c engineClause, ok bool, err error) {
	depth := 0
	for i := 0; i < len(body); i++ {
		switch b := body[i]; {
		case b == '\'' || b == '`' || b == '"':
			j := closingQuote(body, i)
			if j < 0 {
				return c, false, fmt.Errorf("the quote at byte %d is never closed", i)
			}
			i = j
		case b == '(':
			depth++
		case b == ')':
			depth--
		case depth == 0 && isWordByte(b, true) && (i == 0 || !isWordByte(body[i-1], false)):
			j := i
			for j < len(body) && isWordByte(body[j], false) {
				j++
			}
			if !strings.EqualFold(body[i:j], "ENGINE") {
				i = j - 1
				continue
			}
			c, err = parseEngine(body, i, j)
			return c, err == nil, err
		}
	}
	return c, false, nil
}

// parseEngine reads "ENGINE = Name[(args)]" from start, the keyword ending at kwEnd.
func parseEngine(body string, start, kwEnd int) (engineClause, error) {
	c := engineClause{start: start}
	l := &lexer{s: body, pos: kwEnd}
	if !l.punct('=') {
		return c, fmt.Errorf("ENGINE not followed by =")
	}
	name, _, err := l.ident()
	if err != nil {
		return c, fmt.Errorf("engine name: %w", err)
	}
	c.name, c.end = name, l.pos
	save := l.pos
	if !l.punct('(') {
		l.pos = save
		return c, nil
	}
	c.parens = true
	depth, argStart := 0, l.pos
	for i := l.pos; i < len(body); i++ {
		switch b := body[i]; {
		case b == '\'' || b == '`' || b == '"':
			j := closingQuote(body, i)
			if j < 0 {
				return c, fmt.Errorf("engine %s: unclosed quote", name)
			}
			i = j
		case b == '(':
			depth++
		case b == ',' && depth == 0:
			c.args = append(c.args, strings.TrimSpace(body[argStart:i]))
			argStart = i + 1
		case b == ')' && depth > 0:
			depth--
		case b == ')':
			if last := strings.TrimSpace(body[argStart:i]); last != "" || len(c.args) > 0 {
				c.args = append(c.args, last)
			}
			c.end = i + 1
			return c, nil
		}
	}
	return c, fmt.Errorf("engine %s: its arguments are never closed", name)
}

// isStringLiteral reports whether an argument is one quoted string.
func isStringLiteral(arg string) bool {
	return len(arg) >= 2 && arg[0] == '\'' && closingQuote(arg, 0) == len(arg)-1
}

// rewriteEngine rewrites a CREATE body's MergeTree engine for t, database.table being the
// table created. Other engines (Log, Distributed, views without an inner engine) are kept.
func (t *Topology) rewriteEngine(body, database, table string) (string, error) {
	c, ok, err := findEngine(body)
	if err != nil || !ok || !strings.HasSuffix(c.name, "MergeTree") {
		return body, err
	}
	base, args := strings.TrimPrefix(c.name, "Replicated"), c.args
	if base != c.name {
		// Replicated engines start with their path and replica name; modern servers write
		// them out even when the table was created without them.
		n := 0
		for n < 2 && n < len(args) && isStringLiteral(args[n]) {
			n++
		}
		if n == 1 {
			return "", fmt.Errorf("engine %s of %s.%s has a path but no replica name", c.name, database, table)
		}
		args = args[n:]
	}
	if len(args) > 0 && !topLevelWords(body)["ORDER"] {
		// MergeTree(date, (key), 8192): the partitioning is in the arguments, which a
		// replicated engine would read as its path.
		return "", fmt.Errorf("%s.%s uses the old MergeTree syntax (%s with its key in the arguments), which this rewrite does not convert: recreate it with PARTITION BY/ORDER BY first", database, table, c.name)
	}
	name := base
	if t.Replicated {
		path := strings.NewReplacer("{database}", database, "{table}", table).Replace(t.ZooKeeperPath)
		for _, s := range []string{path, t.Replica} {
			if s == "" || strings.ContainsAny(s, `'\`) {
				return "", fmt.Errorf("replication argument %.80q of %s.%s is empty or would leave its quotes", s, database, table)
			}
		}
		name = "Replicated" + base
		args = append([]string{"'" + path + "'", "'" + t.Replica + "'"}, args...)
	}
	engine := "ENGINE = " + name
	if len(args) > 0 || c.parens || t.Replicated {
		engine += "(" + strings.Join(args, ", ") + ")"
	}
	return body[:c.start] + engine + body[c.end:], nil
}

// EngineOf is the engine a CREATE statement's top-level ENGINE clause names, or "" for none
// (a view) or a statement that does not parse.
func EngineOf(stmt string) string {
	c, err := parseCreate(stmt)
	if err != nil {
		return ""
	}
	e, ok, err := findEngine(c.body)
	if err != nil || !ok {
		return ""
	}
	return e.name
}
