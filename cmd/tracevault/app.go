package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/tracevault/tracevault/config"
)

// app holds the global flags every command shares.
type app struct {
	configPath string
	json       bool
	logLevel   string
	logFormat  string
	log        *slog.Logger
	level      slog.Level
	cfg        *config.Config // set by commands that load the configuration

	progressInterval time.Duration
	progress         *progressRun // the running command's progress, if it shows one
}

func newApp() *app { return &app{} }

const rootLong = `tracevault keeps the data of a self-hosted Langfuse deployment safe.

It snapshots PostgreSQL (users, projects, API keys) and the partitions of a replicated
ClickHouse cluster (traces, observations, scores) to Azure Blob Storage or a local directory,
as one consistent, checksummed, incremental snapshot set; records the ZooKeeper metadata of the
replication; runs versioned schema migrations; restores a table, a partition, a database, a
cluster, or a lost replica with the same ZooKeeper paths as its peers; and serves a status page.

Configuration is one TOML file (see config.example.toml); check it with 'tracevault config check'.

Exit codes: 0 success, 1 operation failed or problems found, 2 usage or configuration error.`

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "tracevault",
		Short:         "Backups, restores and replica repair for self-hosted Langfuse",
		Long:          rootLong,
		SilenceUsage:  true,
		SilenceErrors: true,
		Example: `  # validate a configuration
  tracevault config check --config /etc/tracevault.toml

  # run the daemon: scheduled jobs and the status page
  tracevault serve --config /etc/tracevault.toml

  # take one snapshot set now, then list snapshots as JSON
  tracevault backup
  tracevault list --json`,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			if err := refuseEmpty(cmd, args); err != nil {
				return err
			}
			if a.json && !cmd.Flags().Changed("log-format") {
				// A script reading --json output reads stderr as JSON lines too: log records
				// and progress events.
				a.logFormat = "json"
			}
			return a.setupLogging(cmd.ErrOrStderr())
		},
	}
	def := os.Getenv("TRACEVAULT_CONFIG")
	if def == "" {
		def = "./tracevault.toml"
	}
	pf := root.PersistentFlags()
	pf.StringVar(&a.configPath, "config", def, "configuration file (env TRACEVAULT_CONFIG)")
	pf.BoolVar(&a.json, "json", false, "print results as JSON, for scripts")
	pf.StringVar(&a.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	pf.StringVar(&a.logFormat, "log-format", "text", "log format on stderr: text or json (default json with --json)")
	pf.DurationVar(&a.progressInterval, "progress-interval", 10*time.Second, "how often a long command logs its progress when stderr is not a terminal (JSON events with --json); 0 for never")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usage(err) })

	root.AddCommand(
		a.configCommand(),
		a.versionCommand(),
		a.demoCommand(),
		a.serveCommand(),
		a.zkCommand(),
		a.initCommand(),
		a.backupCommand(),
		a.restoreCommand(),
		a.drillCommand(),
		a.listCommand(),
		a.showCommand(),
		a.deleteCommand(),
		a.verifyCommand(),
		a.pruneCommand(),
		a.doctorCommand(),
		a.holdCommand(true),
		a.holdCommand(false),
		a.migrateCommand(),
		a.checkCommand(),
		a.restoreReplicaCommand(),
		a.replayEventsCommand(),
		a.migrateClusterCommand(),
	)
	return root
}

// refuseEmpty rejects an empty value given to a flag or as an argument: an unset shell variable
// ("--partitions $P", "restore $ID") must never widen a command to everything.
func refuseEmpty(cmd *cobra.Command, args []string) error {
	var bad []string
	cmd.Flags().Visit(func(f *pflag.Flag) {
		var values []string
		switch v := f.Value.(type) {
		case pflag.SliceValue:
			values = v.GetSlice()
			if len(values) == 0 {
				values = []string{""}
			}
		default:
			if f.Value.Type() != "string" {
				return
			}
			values = []string{f.Value.String()}
		}
		for _, s := range values {
			if strings.TrimSpace(s) == "" {
				bad = append(bad, "--"+f.Name)
				return
			}
		}
	})
	if len(bad) > 0 {
		return usage(fmt.Errorf("%s given an empty value (an unset shell variable?): give a value, or leave the flag out", strings.Join(bad, ", ")))
	}
	for i, s := range args {
		if strings.TrimSpace(s) == "" {
			return usage(fmt.Errorf("argument %d of '%s' is empty (an unset shell variable?): see '%s --help'", i+1, cmd.CommandPath(), cmd.CommandPath()))
		}
	}
	return nil
}

// handlerOptions are every log handler's: the level, and floats rounded for people.
func (a *app) handlerOptions() *slog.HandlerOptions {
	return &slog.HandlerOptions{Level: a.level, ReplaceAttr: roundFloats}
}

// roundFloats logs a float (seconds, rates) with at most three decimals: 2.6676641549999998
// is noise to a reader and to a log search, 2.668 is not.
func roundFloats(_ []string, at slog.Attr) slog.Attr {
	if at.Value.Kind() == slog.KindFloat64 {
		f := at.Value.Float64()
		if !math.IsInf(f, 0) && !math.IsNaN(f) {
			at.Value = slog.Float64Value(math.Round(f*1000) / 1000)
		}
	}
	return at
}

func (a *app) setupLogging(w io.Writer) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(a.logLevel)); err != nil {
		return usage(fmt.Errorf("--log-level %q: use debug, info, warn or error", a.logLevel))
	}
	a.level = level
	opts := a.handlerOptions()
	switch a.logFormat {
	case "text":
		a.log = slog.New(slog.NewTextHandler(w, opts))
	case "json":
		a.log = slog.New(slog.NewJSONHandler(w, opts))
	default:
		return usage(fmt.Errorf("--log-format %q: use text or json", a.logFormat))
	}
	slog.SetDefault(a.log)
	return nil
}

// loadConfig reads --config; a bad file is a configuration error (exit 2) listing every problem.
func (a *app) loadConfig(cmd *cobra.Command) (*config.Config, error) {
	cfg, err := config.Load(a.configPath)
	if err == nil {
		return cfg, nil
	}
	var problems config.Problems
	if errors.As(err, &problems) {
		printProblems(cmd.ErrOrStderr(), problems)
		return nil, &codeError{code: exitUsage, err: err, silent: true}
	}
	return nil, usage(err)
}

func printProblems(w io.Writer, ps config.Problems) {
	for _, p := range ps {
		fmt.Fprintln(w, p.String())
	}
	noun := "problems"
	if len(ps) == 1 {
		noun = "problem"
	}
	fmt.Fprintf(w, "%d configuration %s; see config.example.toml for every key and its allowed values\n", len(ps), noun)
}

// examples indents an example block the way cobra prints it.
func examples(lines ...string) string {
	return "  " + strings.Join(lines, "\n  ")
}
