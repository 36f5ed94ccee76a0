package migrate

import (
	"context"
)

// Status is where a database stands against its migrations directory.
type Status struct {
	Database string `json:"database"`
	Version  int64  `json:"version"` // NilVersion (-1) when nothing is applied
	Dirty    bool   `json:"dirty"`
	// VersionWithoutFile: schema_migrations names a version no file has (deleted or renamed).
	VersionWithoutFile bool        `json:"version_without_file"`
	Applied            []FileState `json:"applied"`
	Pending            []FileState `json:"pending"`
	Drift              []FileState `json:"drift"` // applied files changed since they ran
}

// FileState is one migration as status sees it.
type FileState struct {
	Version  int64  `json:"version"`
	Title    string `json:"title"`
	File     string `json:"file"`
	Checksum string `json:"checksum"`
	// Recorded is the checksum stored when the file was applied; empty when another tool
	// (golang-migrate) applied it, so drift cannot be judged.
	Recorded string `json:"recorded_checksum,omitempty"`
	Drift    bool   `json:"drift"`
}

// Status reads the version and recorded checksums, without taking the lock: it only reads.
func (r *Runner) Status(ctx context.Context) (*Status, error) {
	cur, dirty, err := r.Driver.Version(ctx)
	if err != nil {
		return nil, err
	}
	recorded, err := r.Driver.Checksums(ctx)
	if err != nil {
		return nil, err
	}
	st := &Status{Database: r.Driver.Name(), Version: cur, Dirty: dirty, Applied: []FileState{}, Pending: []FileState{}, Drift: []FileState{}}
	st.VersionWithoutFile = cur != NilVersion && r.index(cur) < 0
	for _, m := range r.Migrations {
		sum, err := Checksum(m.Up)
		if err != nil {
			return nil, err
		}
		fs := FileState{Version: m.Version, Title: m.Title, File: m.Up, Checksum: sum}
		if m.Version > cur {
			st.Pending = append(st.Pending, fs)
			continue
		}
		fs.Recorded = recorded[m.Version]
		fs.Drift = fs.Recorded != "" && fs.Recorded != sum
		st.Applied = append(st.Applied, fs)
		if fs.Drift {
			st.Drift = append(st.Drift, fs)
		}
	}
	return st, nil
}
