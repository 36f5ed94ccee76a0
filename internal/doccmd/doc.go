// Package doccmd extracts the shell commands the docs show, for the tests that run them as
// written: the ```sh blocks of a Markdown file, with the file, the fence's line and the
// runbook-test marker before each, and each block's commands as a reader would copy them.
//
// One extractor serves every such test, so that a command reads the same to each of them: a
// line ending in \ or |, an indented line and a here-document belong to the command they
// continue, and a comment is dropped but for the `# prints "…"` words a runner checks.
package doccmd

// MigrateClusterRunbooks are the runbooks that move a cluster (docs/runbook-*.md, relative to
// the module root). TestMigrateClusterRunbooks (cmd/tracevault) owns them: it runs each in the
// world it is written for, with its placeholders filled; every other runner of the docs leaves
// them out.
const MigrateClusterRunbooks = "docs/runbook-*.md"
