package restore

import (
	"fmt"
	"strings"

	"github.com/tracevault/tracevault/snapshot/clickhouse"
)

// RefuseLive refuses a plan meant for scratch targets (a restore drill) if any step would write
// to one of the section's own databases or register a table under one of its replication
// paths: either would make the scratch copy part of production. The live paths are both the
// recorded ones (macros expanded by the server) and the ones written in the recorded CREATE
// statements (macros as written), since a step's SQL carries the latter.
func (p *Plan) RefuseLive(sec *clickhouse.Section) error {
	liveDB := map[string]bool{}
	livePath := map[string]string{} // path -> table it belongs to
	for _, t := range sec.Tables {
		liveDB[t.Database] = true
		if t.ZooKeeperPath != "" {
			livePath[t.ZooKeeperPath] = t.FullName()
		}
		for _, path := range clickhouse.ReplicationPaths(t.Create) {
			livePath[path] = t.FullName()
		}
	}
	for _, s := range p.Steps {
		db, _, _ := strings.Cut(s.Target, ".")
		if liveDB[db] {
			return fmt.Errorf("refusing the scratch restore: step %s %s writes to database %s, which is a live one of snapshot %s", s.Action, s.Target, db, p.Snapshot)
		}
		if s.ZooKeeperPath != "" {
			if owner, ok := livePath[s.ZooKeeperPath]; ok {
				return fmt.Errorf("refusing the scratch restore: step %s %s touches replication path %s of live table %s", s.Action, s.Target, s.ZooKeeperPath, owner)
			}
		}
		for _, path := range clickhouse.ReplicationPaths(s.SQL) {
			if owner, ok := livePath[path]; ok {
				return fmt.Errorf("refusing the scratch restore: step %s %s would register in replication path %s of live table %s", s.Action, s.Target, path, owner)
			}
		}
	}
	return nil
}
