package restore

import "github.com/tracevault/tracevault/snapshot/clickhouse"

// CheckFeatures is the preflight's check of tables against a target's capabilities, for a plan
// made from a live source rather than a snapshot (migrate-cluster --dry-run): the same features
// and minimum versions, refused by name before anything is written.
func CheckFeatures(tables []*clickhouse.TableRecord, target clickhouse.Capabilities) []Finding {
	return checkFeatures(tables, target)
}
