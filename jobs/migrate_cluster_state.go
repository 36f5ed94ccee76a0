package jobs

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// loadMigrationState reads the passes done so far, or starts a new record; a record of a
// migration between other clusters is refused rather than reused.
func loadMigrationState(path string, source, target []string) (*migrationState, error) {
	st := &migrationState{path: path, Source: source, Target: target, Loaded: map[string]map[string]string{}}
	var saved migrationState
	if found, err := readState(path, &saved); err != nil || !found {
		return st, err
	}
	if !slices.Equal(saved.Source, source) || !slices.Equal(saved.Target, target) {
		return nil, fmt.Errorf("the migration state %s records a migration from %s to %s, not from %s to %s: remove it to start over",
			path, strings.Join(saved.Source, ","), strings.Join(saved.Target, ","), strings.Join(source, ","), strings.Join(target, ","))
	}
	if saved.Loaded != nil {
		st.Loaded = saved.Loaded
	}
	st.Passes, st.Started = saved.Passes, saved.Started
	return st, nil
}

// holds reports whether the target holds object as table's partition.
func (st *migrationState) holds(table, partition, object string) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.Loaded[table][partition] == object
}

// loaded records that the target holds object as table's partition ("" for dropped) and saves
// the record at once: a pass interrupted after this partition does not move it again.
func (st *migrationState) loaded(table, partition, object string) error {
	st.mu.Lock()
	if st.Loaded[table] == nil {
		st.Loaded[table] = map[string]string{}
	}
	if object == "" {
		delete(st.Loaded[table], partition)
	} else {
		st.Loaded[table][partition] = object
	}
	st.mu.Unlock()
	return st.save()
}

// save writes the record atomically (writeState).
func (st *migrationState) save() error {
	st.mu.Lock()
	data, err := json.MarshalIndent(st, "", "  ")
	st.mu.Unlock()
	if err != nil {
		return fmt.Errorf("encode the migration state: %w", err)
	}
	return writeState(st.path, data)
}

// readState reads a saved state into v; found is false when none was saved yet.
func readState(path string, v any) (found bool, err error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read the migration state %s: %w", path, err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return false, fmt.Errorf("read the migration state %s: %w", path, err)
	}
	return true, nil
}

// writeState writes a state atomically: a temporary file renamed over the old one.
func writeState(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".migrate-state-*")
	if err != nil {
		return fmt.Errorf("save the migration state %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("save the migration state %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save the migration state %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("save the migration state %s: %w", path, err)
	}
	return nil
}
