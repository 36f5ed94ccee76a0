package native

import (
	"fmt"
	"strconv"
	"strings"
)

// kind is how a column's values are laid out in a Native block.
type kind uint8

const (
	kindFixed     kind = iota // size bytes a value
	kindString                // uvarint length + bytes
	kindNullable              // a byte a value (the null map), then the nested column
	kindArray                 // a uint64 offset a value, then the nested column of the last offset's values
	kindTuple                 // each element's column in turn
	kindMap                   // Array(Tuple(K, V))
	kindLowCard               // granules of index type, additional keys and indexes; see skipLowCard
	kindStateList             // an aggregate state that is uvarint n, then n values of elems[0]
	kindUniqState             // uniq's UniquesHashSet: skip degree byte, uvarint n, n UInt32 hashes
)

// uniqMaxSize is UNIQUES_HASH_MAX_SIZE: a UniquesHashSet never holds more hashes, and the
// server refuses to read one that says it does.
const uniqMaxSize = 1 << 16

// colType is a parsed column type: just enough to skip its data.
type colType struct {
	kind  kind
	size  uint64     // kindFixed
	elems []*colType // nested types: Nullable/Array/LowCardinality/state 1, Tuple n, Map 2
}

const maxTypeDepth = 32

// fixedSizes are the types whose values all have the same size.
var fixedSizes = map[string]uint64{
	"UInt8": 1, "Int8": 1, "Bool": 1, "Enum8": 1, "Nothing": 1,
	"UInt16": 2, "Int16": 2, "Date": 2, "Enum16": 2,
	"UInt32": 4, "Int32": 4, "Float32": 4, "Date32": 4, "DateTime": 4, "IPv4": 4, "Decimal32": 4,
	"UInt64": 8, "Int64": 8, "Float64": 8, "DateTime64": 8, "Decimal64": 8,
	"UInt128": 16, "Int128": 16, "UUID": 16, "IPv6": 16, "Decimal128": 16,
	"UInt256": 32, "Int256": 32, "Decimal256": 32,
	"IntervalNanosecond": 8, "IntervalMicrosecond": 8, "IntervalMillisecond": 8, "IntervalSecond": 8,
	"IntervalMinute": 8, "IntervalHour": 8, "IntervalDay": 8, "IntervalWeek": 8, "IntervalMonth": 8,
	"IntervalQuarter": 8, "IntervalYear": 8,
	"BFloat16": 2, "Time": 4, "Time64": 8,
}

// aliases are types written as others: the geo types.
var aliases = map[string]string{
	"Point":           "Tuple(Float64, Float64)",
	"Ring":            "Array(Point)",
	"LineString":      "Array(Point)",
	"MultiLineString": "Array(LineString)",
	"Polygon":         "Array(Ring)",
	"MultiPolygon":    "Array(Polygon)",
}

// UnsupportedError is a type whose layout tracevault does not know, so it cannot skip its
// values: the stream is refused rather than stored unchecked.
type UnsupportedError struct{ Type string }

func (e *UnsupportedError) Error() string {
	return fmt.Sprintf("type %s is not one tracevault can check in a Native stream", e.Type)
}

// Walkable says whether the scanner can walk the values of a column type as system.columns or
// a block header names it: nil, or why not (an *UnsupportedError for a type whose layout
// tracevault does not know).
func Walkable(typeName string) error {
	_, err := parseType(typeName)
	return err
}

// parseType reads a type name as the server writes it in a Native block header.
func parseType(s string) (*colType, error) { return parseTypeDepth(strings.TrimSpace(s), 0) }

func parseTypeDepth(s string, depth int) (*colType, error) {
	if depth > maxTypeDepth {
		return nil, fmt.Errorf("type nested more than %d deep", maxTypeDepth)
	}
	name, args, hasArgs := strings.Cut(s, "(")
	name = strings.TrimSpace(name)
	if hasArgs {
		if !strings.HasSuffix(args, ")") {
			return nil, fmt.Errorf("type %q: unbalanced parentheses", s)
		}
		args = args[:len(args)-1]
	}
	if size, ok := fixedSizes[name]; ok {
		// DateTime('tz'), DateTime64(p[, tz]), Enum8('a' = 1), Decimal32(s): the arguments do not
		// change the size.
		return &colType{kind: kindFixed, size: size}, nil
	}
	sub := func(i int) ([]*colType, error) {
		parts, err := SplitArgs(args)
		if err != nil {
			return nil, fmt.Errorf("type %q: %w", s, err)
		}
		if i >= 0 && len(parts) != i {
			return nil, fmt.Errorf("type %q takes %d arguments, has %d", s, i, len(parts))
		}
		var out []*colType
		for _, p := range parts {
			t, err := parseTypeDepth(p, depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, t)
		}
		return out, nil
	}
	if alias, ok := aliases[name]; ok && !hasArgs {
		return parseTypeDepth(alias, depth+1)
	}
	switch name {
	case "String":
		if !hasArgs {
			return &colType{kind: kindString}, nil
		}
	case "FixedString":
		n, err := strconv.ParseUint(strings.TrimSpace(args), 10, 32)
		if err != nil || n == 0 {
			return nil, fmt.Errorf("type %q: bad length", s)
		}
		return &colType{kind: kindFixed, size: n}, nil
	case "Decimal":
		parts, err := SplitArgs(args)
		if err != nil || len(parts) != 2 {
			return nil, fmt.Errorf("type %q: want Decimal(P, S)", s)
		}
		p, err := strconv.ParseUint(strings.TrimSpace(parts[0]), 10, 8)
		switch {
		case err != nil || p == 0 || p > 76:
			return nil, fmt.Errorf("type %q: bad precision", s)
		case p <= 9:
			return &colType{kind: kindFixed, size: 4}, nil
		case p <= 18:
			return &colType{kind: kindFixed, size: 8}, nil
		case p <= 38:
			return &colType{kind: kindFixed, size: 16}, nil
		}
		return &colType{kind: kindFixed, size: 32}, nil
	case "Nullable", "Array", "LowCardinality":
		el, err := sub(1)
		if err != nil {
			return nil, err
		}
		k := map[string]kind{"Nullable": kindNullable, "Array": kindArray, "LowCardinality": kindLowCard}[name]
		if k == kindLowCard {
			inner := el[0]
			if inner.kind == kindNullable {
				inner = inner.elems[0]
			}
			if inner.kind != kindFixed && inner.kind != kindString {
				return nil, fmt.Errorf("type %q: LowCardinality of a composite type", s)
			}
		}
		return &colType{kind: k, elems: el}, nil
	case "Map":
		el, err := sub(2)
		if err != nil {
			return nil, err
		}
		return &colType{kind: kindMap, elems: el}, nil
	case "Nested":
		// flatten_nested = 0 keeps a Nested column whole: an array of tuples.
		el, err := parseTypeDepth("Tuple("+args+")", depth+1)
		if err != nil {
			return nil, err
		}
		return &colType{kind: kindArray, elems: []*colType{el}}, nil
	case "Tuple":
		parts, err := SplitArgs(args)
		if err != nil || len(parts) == 0 {
			return nil, fmt.Errorf("type %q: bad elements", s)
		}
		t := &colType{kind: kindTuple}
		for _, p := range parts {
			et, err := parseTypeDepth(elementType(p), depth+1)
			if err != nil {
				return nil, err
			}
			t.elems = append(t.elems, et)
		}
		return t, nil
	case "SimpleAggregateFunction":
		// Stored as its argument type: SimpleAggregateFunction(any, String) is a String column.
		parts, err := SplitArgs(args)
		if err != nil || len(parts) != 2 {
			return nil, fmt.Errorf("type %q: want SimpleAggregateFunction(f, T)", s)
		}
		return parseTypeDepth(parts[1], depth+1)
	case "AggregateFunction":
		return parseAggregate(s, args, depth)
	}
	return nil, &UnsupportedError{Type: s}
}

// parseAggregate knows the states whose layout is a count and the values: groupArray and
// groupUniqArray of one plain argument, which is what Langfuse's project_environments keeps,
// and uniq of one argument (UniquesHashSet::write, the same for every argument type). Any
// other state's layout is private to its function, so it is refused rather than guessed; a
// versioned state (AggregateFunction(1, f, T)) has three arguments and is refused too.
func parseAggregate(s, args string, depth int) (*colType, error) {
	parts, err := SplitArgs(args)
	if err != nil || len(parts) != 2 {
		return nil, &UnsupportedError{Type: s}
	}
	switch strings.TrimSpace(parts[0]) {
	case "groupArray", "groupUniqArray":
		el, err := parseTypeDepth(parts[1], depth+1)
		if err == nil && (el.kind == kindFixed || el.kind == kindString) {
			return &colType{kind: kindStateList, elems: []*colType{el}}, nil
		}
	case "uniq":
		if _, err := parseTypeDepth(parts[1], depth+1); err == nil {
			return &colType{kind: kindUniqState}, nil
		}
	}
	return nil, &UnsupportedError{Type: s}
}

// elementType strips the name from a named tuple element ("a String", "`a b` Nullable(String)"):
// an unnamed element has no space outside parentheses and quotes.
func elementType(e string) string {
	e = strings.TrimSpace(e)
	if strings.HasPrefix(e, "`") {
		if end := strings.Index(e[1:], "`"); end >= 0 {
			return e[end+2:]
		}
	}
	typ := e
	topLevel(e, func(i int, c byte) bool {
		if c == ' ' {
			typ = e[i+1:]
			return false
		}
		return true
	})
	return typ
}

// SplitArgs splits a type's (or an engine's) arguments at the commas outside parentheses and
// quotes.
func SplitArgs(s string) ([]string, error) {
	var out []string
	start := 0
	depth, quote := topLevel(s, func(i int, c byte) bool {
		if c == ',' {
			out = append(out, strings.TrimSpace(s[start:i]))
			start = i + 1
		}
		return true
	})
	if depth < 0 {
		return nil, fmt.Errorf("unbalanced parentheses")
	}
	if depth != 0 || quote != 0 {
		return nil, fmt.Errorf("unbalanced parentheses or quotes")
	}
	if last := strings.TrimSpace(s[start:]); last != "" || len(out) > 0 {
		out = append(out, last)
	}
	return out, nil
}

// topLevel calls fn with each byte of s outside quotes and parentheses, in order, until fn
// returns false. It returns the nesting depth and the open quote where it stopped (both zero
// for a balanced s); a ')' without its '(' stops it at depth -1.
func topLevel(s string, fn func(i int, c byte) bool) (depth int, quote byte) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == '\\' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '\'' || c == '`' || c == '"':
			quote = c
		case c == '(':
			depth++
		case c == ')':
			if depth--; depth < 0 {
				return depth, quote
			}
		case depth == 0:
			if !fn(i, c) {
				return depth, quote
			}
		}
	}
	return depth, quote
}
