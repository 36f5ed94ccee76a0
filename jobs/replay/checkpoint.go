package replay

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Checkpoint is how far a replay came: the window it walks and the last event of the last
// batch Langfuse acknowledged. It is rewritten (temp file, fsync, rename) after every
// acknowledged batch, so a run killed at any instant resumes after the last acknowledged batch
// and resends at most the one batch whose answer it never saw.
type Checkpoint struct {
	// Container and Window name the replay; a checkpoint of another replay is not resumed.
	Container string `json:"container"`
	Window    Window `json:"window"`
	// Position is the last acknowledged event; events up to it in the selection's order are done.
	Position *Event `json:"position,omitempty"`
	Sent     int    `json:"sent"`
	Batches  int    `json:"batches"`
	Queued   int    `json:"queued"`
	Skipped  int    `json:"skipped"`
	// Errors are the route's reasons for skipped keys (the first NameLimit).
	Errors  []string  `json:"errors,omitempty"`
	Done    bool      `json:"done"`
	Updated time.Time `json:"updated"`
}

// same says whether c is a checkpoint of the replay of container over w.
func (c *Checkpoint) same(container string, w Window) bool {
	return c.Container == container && c.Window.Since.Equal(w.Since)
}

// LoadCheckpoint reads the checkpoint at path; a missing file is no checkpoint (nil, nil).
func LoadCheckpoint(path string) (*Checkpoint, error) {
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read replay checkpoint %s: %w", path, err)
	}
	var c Checkpoint
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("read replay checkpoint %s: %w (remove it to start the replay over)", path, err)
	}
	return &c, nil
}

// save writes c atomically: a crash leaves the old checkpoint or the new one, never a torn one.
func (c *Checkpoint) save(path string) error {
	c.Updated = time.Now().UTC()
	raw, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("encode replay checkpoint: %w", err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("write replay checkpoint %s: %w", path, err)
	}
	f, err := os.CreateTemp(dir, ".replay-checkpoint-*")
	if err != nil {
		return fmt.Errorf("write replay checkpoint %s: %w", path, err)
	}
	defer os.Remove(f.Name()) // after a successful rename, a no-op
	if _, err := f.Write(append(raw, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("write replay checkpoint %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write replay checkpoint %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write replay checkpoint %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write replay checkpoint %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // the rename itself survives a power loss
		d.Close()
	}
	return nil
}

// DefaultStatePath is where a checkpoint lives when the configuration names no path: under
// $XDG_STATE_HOME (or ~/.local/state), else the temporary directory.
func DefaultStatePath() string {
	dir := os.Getenv("XDG_STATE_HOME")
	if dir == "" {
		if home, err := os.UserHomeDir(); err == nil {
			dir = filepath.Join(home, ".local", "state")
		} else {
			dir = os.TempDir()
		}
	}
	return filepath.Join(dir, "tracevault", "replay-checkpoint.json")
}
