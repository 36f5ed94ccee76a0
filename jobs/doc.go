// Package jobs is the one seam between the commands and the work: every command of
// cmd/tracevault and every scheduled job of the daemon goes through it. A command's flags become
// a request (BackupRequest, RestoreRequest, ReplicaRequest, DrillRequest, ...), which jobs maps
// onto the configuration and the packages that do the work (snapshot/*, migrate): request, then
// a plan that --dry-run prints, then the run, whose result comes back for the command to print.
//
// The daemon (Daemon) turns [[jobs]] into cron entries, decides which daemon runs each
// occurrence, and keeps the run history the status page shows.
package jobs
