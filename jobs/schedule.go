package jobs

import (
	"fmt"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/tracevault/tracevault/config"
)

// Job is a configured job with its parsed schedule.
type Job struct {
	config.Job
	schedule cron.Schedule
}

// Next is the job's next occurrence after t.
func (j Job) Next(t time.Time) time.Time { return j.schedule.Next(t) }

// Latest is the job's latest occurrence at or before t (zero if none within a year and a half).
// cron only answers "next after", so it looks back over a doubling window. cron answers the
// zero time when it finds no occurrence within five years, which is never "after" anything,
// so it is checked for, or an impossible date would loop forever.
func (j Job) Latest(t time.Time) time.Time {
	t = t.Truncate(time.Second)
	for back := time.Minute; back < 550*24*time.Hour; back *= 2 {
		o := j.Next(t.Add(-back))
		if o.IsZero() {
			return time.Time{}
		}
		if o.After(t) {
			continue
		}
		for n := j.Next(o); !n.IsZero() && !n.After(t); n = j.Next(n) {
			o = n
		}
		return o
	}
	return time.Time{}
}

// ParseJobs parses every schedule as config validated them.
func ParseJobs(cfg []config.Job) ([]Job, error) {
	out := make([]Job, 0, len(cfg))
	for _, c := range cfg {
		s, err := config.ParseSchedule(c.Schedule)
		if err != nil {
			return nil, fmt.Errorf("parse schedule %q of job %q: %w", c.Schedule, c.Name, err)
		}
		out = append(out, Job{Job: c, schedule: s})
	}
	return out, nil
}
