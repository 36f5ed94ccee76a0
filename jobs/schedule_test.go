package jobs

import (
	"strings"
	"testing"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/tracevault/tracevault/config"
)

var now = time.Date(2026, 5, 17, 13, 45, 30, 0, time.UTC)

func TestLatest(t *testing.T) {
	for _, tc := range []struct {
		spec string
		want time.Time
	}{
		{"*/5 * * * *", time.Date(2026, 5, 17, 13, 45, 0, 0, time.UTC)},
		{"0 3 * * *", time.Date(2026, 5, 17, 3, 0, 0, 0, time.UTC)},
		{"30 45 13 * * *", now}, // an occurrence at t itself counts
		{"0 0 1 1 *", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"@every 1h", time.Time{}}, // constant delays have no anchor to look back to... see below
	} {
		s, err := config.CronParser.Parse(tc.spec)
		if err != nil {
			t.Fatal(err)
		}
		got := Job{schedule: s}.Latest(now)
		if tc.spec == "@every 1h" {
			// robfig counts "@every" from the time asked, so the latest is within the hour.
			if got.After(now) || now.Sub(got) > time.Hour {
				t.Errorf("Latest(%q) = %v, want within the hour before %v", tc.spec, got, now)
			}
			continue
		}
		if !got.Equal(tc.want) {
			t.Errorf("Latest(%q) = %v, want %v", tc.spec, got, tc.want)
		}
	}
}

// TestImpossibleSchedule: 30 February parses but never fires. It used to make Latest loop
// forever (cron answers the zero time, which is never after anything), hanging the daemon.
func TestImpossibleSchedule(t *testing.T) {
	s, err := config.CronParser.Parse("0 0 30 2 *")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan time.Time, 1)
	go func() { done <- Job{schedule: s}.Latest(now) }()
	select {
	case got := <-done:
		if !got.IsZero() {
			t.Errorf("Latest of 30 February = %v, want zero", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Latest of an impossible schedule does not return")
	}
	_, err = ParseJobs([]config.Job{{Name: "feb", Schedule: "0 0 30 2 *"}})
	if err == nil || !strings.Contains(err.Error(), "never fires") {
		t.Errorf("ParseJobs of 30 February: %v, want a 'never fires' error", err)
	}
}

// FuzzSchedule: any schedule string either fails to parse or gives occurrences that behave:
// Next is after t, Latest is at or before t, nothing fires between Latest and t, and neither
// call hangs.
func FuzzSchedule(f *testing.F) {
	for _, s := range []string{"*/5 * * * *", "0 3 * * *", "30 45 13 * * *", "0 0 30 2 *", "@daily", "@every 90s",
		"0 0 29 2 *", "59 23 31 12 *", "0-59/7 1,2,3 * JAN-MAR MON-FRI", "CRON_TZ=Europe/Paris 0 3 * * *", "TZ=", "@every 0s", "? ? ? ? ?"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		var s cron.Schedule
		parsed := make(chan error, 1)
		go func() {
			var err error
			s, err = config.ParseSchedule(spec)
			parsed <- err
		}()
		select {
		case err := <-parsed:
			if err != nil {
				return
			}
		case <-time.After(3 * time.Second):
			t.Fatalf("parsing %q does not return", spec)
		}
		j := Job{schedule: s}
		type answer struct{ next, latest, after time.Time }
		done := make(chan answer, 1)
		go func() {
			var a answer
			a.next = j.Next(now)
			a.latest = j.Latest(now)
			if !a.latest.IsZero() {
				a.after = j.Next(a.latest)
			}
			done <- a
		}()
		var a answer
		select {
		case a = <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("Next or Latest of %q does not return", spec)
		}
		if !a.next.IsZero() && !a.next.After(now) {
			t.Fatalf("Next(%v) of %q = %v, not after", now, spec, a.next)
		}
		if a.latest.After(now) {
			t.Fatalf("Latest(%v) of %q = %v, after it", now, spec, a.latest)
		}
		if !a.latest.IsZero() && !a.after.IsZero() && !a.after.After(now.Truncate(time.Second)) {
			t.Fatalf("%q fires at %v, between its Latest %v and %v", spec, a.after, a.latest, now)
		}
	})
}
