package clickhouse

import (
	"errors"
	"strings"
	"testing"
)

// TestUnselectedNamesEachGlobThatSelectsNothing: every --tables glob must select a table within
// the configured databases and exclusions; the error names the ones that do not and what the
// databases hold, for a typo.
func TestUnselectedNamesEachGlobThatSelectsNothing(t *testing.T) {
	tables := [][2]string{{"default", "traces"}, {"default", "scores"}, {"ux_db", "traces"}, {"system", "parts"}}
	f := Filter{Databases: []string{"default"}, Exclude: []string{"default.scores"}}
	for _, tc := range []struct {
		globs []string
		bad   string // "" for no error
	}{
		{[]string{"default.traces"}, ""},
		{[]string{"default.*"}, ""},
		{[]string{"nope.*"}, "nope.*"},
		{[]string{"defualt.traces"}, "defualt.traces"},
		{[]string{"default.traces", "ux_db.*"}, "ux_db.*"},   // outside [clickhouse] databases
		{[]string{"default.scores"}, "default.scores"},       // excluded
		{[]string{"system.*", "default.traces"}, "system.*"}, // never backed up
	} {
		err := unselected(tc.globs, f, tables, "ch1:9000")
		switch {
		case tc.bad == "" && err != nil:
			t.Errorf("%v: %v", tc.globs, err)
		case tc.bad != "" && (!errors.Is(err, ErrSelectsNothing) || !strings.Contains(err.Error(), "table filter "+tc.bad+" selects no table") || !strings.Contains(err.Error(), "tables there: default.traces")):
			t.Errorf("%v: %v; want ErrSelectsNothing naming %s and default.traces", tc.globs, err, tc.bad)
		}
	}
}
