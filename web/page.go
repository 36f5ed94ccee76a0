package web

import (
	"fmt"
	"html/template"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/tracevault/tracevault/jobs"
	"github.com/tracevault/tracevault/snapshot/clickhouse/replica"
	"github.com/tracevault/tracevault/snapshot/store"
	"github.com/tracevault/tracevault/snapshot/zookeeper"
)

// base is what every page shows: who is looking and what they may do.
type base struct {
	Title    string
	Refresh  int // seconds; 0 = no automatic reload
	Version  string
	Actions  bool // a token is configured
	LoggedIn bool
	CSRF     string
	Flash    string
}

type indexPage struct {
	base
	Status    jobs.Status
	StatusErr string
	// StatusStale is the age of the status shown when a fresh read overran (panel.answer).
	StatusStale   time.Duration
	ZooKeeper     []zookeeper.ServerHealth
	ZooKeeperErr  string
	Replicas      *replica.Report
	ReplicasErr   string
	Migrations    []jobs.MigrationState
	MigrationsErr string
	// Problems come first on the page, each with what to do about it.
	Problems []jobs.Problem
}

func problem(what, fix string) jobs.Problem { return jobs.Problem{What: what, Fix: fix} }

// problems gathers what needs an operator, worst first, from every panel.
func problems(p indexPage) []jobs.Problem {
	var out []jobs.Problem
	// Replicas first: an isolated replica serves empty traces to users right now.
	if p.ReplicasErr != "" {
		out = append(out, problem("replica check failed: "+p.ReplicasErr, "tracevault check"))
	}
	if p.Replicas != nil {
		for _, rp := range p.Replicas.Problems {
			// The ZooKeeper and migrations panels report those themselves.
			if rp.Kind == "zookeeper" || rp.Kind == "migration" {
				continue
			}
			what := rp.Message
			if (rp.Table != "" || rp.Replica != "") && !strings.Contains(what, rp.Table) {
				what = fmt.Sprintf("%s on %s: %s", rp.Table, rp.Replica, rp.Message)
			}
			out = append(out, problem(what, rp.Fix))
		}
	}
	if p.StatusErr != "" {
		out = append(out, problem("status unavailable: "+p.StatusErr, "check the repository ([storage]) and the daemon's log"))
	}
	out = append(out, p.Status.Problems...)
	if p.ZooKeeperErr != "" {
		out = append(out, problem("zookeeper: "+p.ZooKeeperErr, "tracevault zk health"))
	}
	for _, h := range p.ZooKeeper {
		if !h.OK {
			out = append(out, problem(fmt.Sprintf("zookeeper %s: %s", h.Server, h.Error), "tracevault zk health"))
		}
		for _, w := range h.Warnings {
			out = append(out, problem(fmt.Sprintf("zookeeper %s: %s", h.Server, w), "tracevault zk health"))
		}
	}
	if p.MigrationsErr != "" {
		out = append(out, problem("migrations: "+p.MigrationsErr, "tracevault migrate --target clickhouse status"))
	}
	for _, m := range p.Migrations {
		status := "tracevault migrate --target " + m.Target + " status"
		switch {
		case m.Error != "":
			out = append(out, problem(fmt.Sprintf("%s migrations: %s", m.Target, m.Error), status))
		case m.Status.Dirty:
			out = append(out, problem(fmt.Sprintf("%s schema_migrations is dirty at version %d: a migration failed half-way", m.Target, m.Status.Version),
				fmt.Sprintf("fix the schema by hand, then tracevault migrate --target %s force %d", m.Target, m.Status.Version)))
		case len(m.Status.Drift) > 0:
			out = append(out, problem(fmt.Sprintf("%s: %d applied migration files changed since they ran", m.Target, len(m.Status.Drift)), status))
		}
	}
	return out
}

type snapshotPage struct {
	base
	Err      string
	Manifest *store.Manifest
	Scope    string // what the set holds, with its ClickHouse selection
	Totals   store.Totals
	Tables   []tableObjects
}

// tableObjects is one source's database table (or other unit) with its objects.
type tableObjects struct {
	Source, Name string
	Objects      []store.ManifestObject
	Rows, Bytes  int64
}

func groupObjects(objs []store.ManifestObject) []tableObjects {
	idx := map[string]int{}
	var out []tableObjects
	for _, o := range objs {
		name := strings.Trim(o.Database+"."+o.Table, ".")
		if name == "" {
			name = o.Kind
		}
		key := o.Source + "\x00" + name
		i, ok := idx[key]
		if !ok {
			i = len(out)
			idx[key] = i
			out = append(out, tableObjects{Source: o.Source, Name: name})
		}
		out[i].Objects = append(out[i].Objects, o)
		out[i].Rows += o.Rows
		out[i].Bytes += o.Size
	}
	sort.SliceStable(out, func(a, b int) bool {
		return out[a].Source+out[a].Name < out[b].Source+out[b].Name
	})
	return out
}

func urlQuery(s string) string { return url.QueryEscape(s) }

var funcs = template.FuncMap{
	"utc": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	},
	"rel":   relative,
	"since": func(seconds float64) string { return roughDuration(time.Duration(seconds * float64(time.Second))) },
	"duration": func(start, end time.Time) string {
		if end.IsZero() {
			return "…"
		}
		return end.Sub(start).Round(100 * time.Millisecond).String()
	},
	"bytes": store.HumanBytes,
	"outcomeClass": func(o string) string {
		switch o {
		case jobs.OutcomeSucceeded:
			return "ok"
		case jobs.OutcomeRunning, jobs.OutcomeSkipped:
			return "warn"
		}
		return "bad"
	},
	"join":         func(xs []string) string { return strings.Join(xs, ", ") },
	"verdictClass": verdictClass,
	"worstVerdict": worstVerdict,
	"cronWords":    cronWords,
	// errtext shows an error recorded before errors were sanitised at their source as safe text.
	"errtext": store.ErrorText,
}

// relative renders a time as "in 3 h" or "3 h ago" next to its UTC value.
func relative(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := time.Until(t)
	if d < 0 {
		return roughDuration(-d) + " ago"
	}
	return "in " + roughDuration(d)
}

func roughDuration(d time.Duration) string {
	switch {
	case d < time.Minute:
		return d.Round(time.Second).String()
	case d < time.Hour:
		return d.Round(time.Minute).String()
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h", int(d.Round(time.Hour)/time.Hour))
	default:
		return fmt.Sprintf("%d d", int(d/(24*time.Hour)))
	}
}

// cronWords says the common schedules in words; anything else is shown as its expression.
func cronWords(expr string) string {
	f := strings.Fields(expr)
	if len(f) > 0 && strings.HasPrefix(f[0], "CRON_TZ=") {
		return cronWords(strings.Join(f[1:], " ")) + " (" + strings.TrimPrefix(f[0], "CRON_TZ=") + ")"
	}
	if len(f) == 6 && f[0] == "0" {
		// Seconds first, on the minute: the 5-field schedule it stands for (run.toml's are such).
		return cronWords(strings.Join(f[1:], " "))
	}
	switch {
	case strings.HasPrefix(expr, "@"):
		return map[string]string{"@hourly": "every hour", "@daily": "every day at 00:00", "@midnight": "every day at 00:00",
			"@weekly": "every Sunday at 00:00", "@monthly": "on the 1st of every month", "@yearly": "every year", "@annually": "every year"}[expr]
	case len(f) == 6 && strings.HasPrefix(f[0], "*/") && allStars(f[1:]):
		return "every " + strings.TrimPrefix(f[0], "*/") + " s"
	case len(f) == 5 && strings.HasPrefix(f[0], "*/") && allStars(f[1:]):
		return "every " + strings.TrimPrefix(f[0], "*/") + " min"
	case len(f) == 5 && isNum(f[0]) && f[1] == "*" && allStars(f[2:]):
		return fmt.Sprintf("every hour at :%02s", f[0])
	case len(f) == 5 && isNum(f[0]) && strings.HasPrefix(f[1], "*/") && allStars(f[2:]):
		return fmt.Sprintf("every %s h at :%02s", strings.TrimPrefix(f[1], "*/"), f[0])
	case len(f) == 5 && isNum(f[0]) && isNum(f[1]) && allStars(f[2:]):
		return fmt.Sprintf("every day at %02s:%02s UTC", f[1], f[0])
	}
	return ""
}

func allStars(fs []string) bool {
	for _, f := range fs {
		if f != "*" && f != "?" {
			return false
		}
	}
	return true
}

func isNum(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}
