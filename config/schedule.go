package config

import (
	"errors"
	"fmt"
	"time"

	"github.com/robfig/cron/v3"
)

// ParseSchedule parses a [[jobs]] schedule with CronParser, for validation and the scheduler
// alike. The cron library panics on some input ("TZ=" without a space), and accepts dates
// that never come (30 February), on which it answers the zero time; both become errors here.
func ParseSchedule(spec string) (s cron.Schedule, err error) {
	defer func() {
		if r := recover(); r != nil {
			s, err = nil, fmt.Errorf("not a cron expression (%v)", r)
		}
	}()
	s, err = CronParser.Parse(spec)
	if err != nil {
		return nil, err
	}
	if s.Next(time.Now()).IsZero() {
		return nil, errors.New("it never fires (a date that does not exist, such as 30 February)")
	}
	return s, nil
}
