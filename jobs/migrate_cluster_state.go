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
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the migration state %s: %w", path, err)
	}
	var saved migrationState
	if err := json.Unmarshal(data, &saved); err != nil {
		return nil, fmt.Errorf("read the migration state %s: %w", path, err)
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

// save writes the record atomically: a temporary file renamed over the old one.
func (st *migrationState) save() error {
	st.mu.Lock()
	data, err := json.MarshalIndent(st, "", "  ")
	st.mu.Unlock()
	if err != nil {
		return fmt.Errorf("encode the migration state: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(st.path), ".migrate-state-*")
	if err != nil {
		return fmt.Errorf("save the migration state %s: %w", st.path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("save the migration state %s: %w", st.path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save the migration state %s: %w", st.path, err)
	}
	if err := os.Rename(tmp.Name(), st.path); err != nil {
		return fmt.Errorf("save the migration state %s: %w", st.path, err)
	}
	return nil
}
