package main

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestFinish(t *testing.T) {
	res := func(step string, scale int, tv, base, rss float64) *result {
		r := &result{Step: step, Scale: scale, Target: atMost(1.15), Tracevault: summary{Seconds: tv, PeakRSSMiB: rss}}
		if base > 0 {
			r.Baseline = &summary{Seconds: base}
		}
		return r
	}
	cases := []struct {
		name      string
		lo, hi    *result
		ratioMet  bool
		growthMet bool
		timeRatio float64
	}{
		{"linear and flat", res("a", 1, 10, 10, 100), res("a", 4, 40, 30, 110), false, true, 4},
		{"within target", res("b", 1, 10, 9, 100), res("b", 4, 39, 36, 100), true, true, 3.9},
		{"superlinear", res("c", 1, 10, 10, 100), res("c", 4, 50, 45, 100), true, false, 5},
		{"memory grows", res("d", 1, 10, 10, 100), res("d", 4, 40, 40, 130), true, false, 4},
		{"over 256 MiB", res("e", 1, 10, 10, 250), res("e", 4, 40, 40, 260), false, false, 4},
		{"no baseline", res("f", 1, 10, 0, 100), res("f", 4, 40, 0, 100), false, true, 4},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newReport(options{Scales: []int{1, 4}}, nil)
			r.Results = []*result{c.lo, c.hi}
			r.finish(true)
			if c.hi.Baseline != nil && (c.hi.Met == nil || *c.hi.Met != c.ratioMet) {
				t.Errorf("ratio %.2f: met = %s, want %v", c.hi.Ratio, met(c.hi.Met), c.ratioMet)
			}
			if c.hi.Baseline == nil && (c.hi.Met != nil || c.hi.Ratio != 0) {
				t.Errorf("judged without a baseline: %v %v", c.hi.Met, c.hi.Ratio)
			}
			if len(r.Growth) != 1 {
				t.Fatalf("growth: %+v", r.Growth)
			}
			g := r.Growth[0]
			if g.TimeRatio != c.timeRatio || g.Met == nil || *g.Met != c.growthMet {
				t.Errorf("growth %+v (%s), want time ratio %.2f met %v", g, met(g.Met), c.timeRatio, c.growthMet)
			}
			r.finish(false)
			if c.hi.Met != nil || r.Growth[0].Met != nil {
				t.Error("judged without targets")
			}
		})
	}
}

// A side without a target (the incremental step's per-run cost) is reported at both scales but
// judged at neither.
func TestFinishUntargetedSide(t *testing.T) {
	r := newReport(options{Scales: []int{1, 4}}, nil)
	lo := &result{Step: "per-run cost", Scale: 1, Tracevault: summary{Seconds: 0.3, PeakRSSMiB: 38}}
	hi := &result{Step: "per-run cost", Scale: 4, Tracevault: summary{Seconds: 0.5, PeakRSSMiB: 38}}
	r.Results = []*result{lo, hi}
	r.finish(true)
	if hi.Met != nil || len(r.Growth) != 1 || r.Growth[0].Met != nil || r.Growth[0].TimeRatio != 1.67 {
		t.Errorf("untargeted side judged: met %s, growth %+v", met(hi.Met), r.Growth)
	}
}

// TestMerge: a later run's rows replace the earlier run's of the same step and scale and join
// the table otherwise; its data and machine are kept in a note naming its rows, and the targets
// are judged again.
func TestMerge(t *testing.T) {
	row := func(step string, scale int, tv, base float64) *result {
		return &result{Step: step, Scale: scale, Target: atMost(0.5), Tracevault: summary{Seconds: tv, PeakRSSMiB: 50}, Baseline: &summary{Seconds: base}}
	}
	whole := newReport(options{Scales: []int{1, 4}, Runs: 3}, []string{"load 1"})
	whole.Results = []*result{row("backup", 1, 1, 1), row("backup", 4, 4, 4), row("migrate", 1, 2, 10)}
	whole.Data = []string{"4x: demo 1000000 traces"}
	whole.finish(true)
	later := newReport(options{Scales: []int{4}, Runs: 3}, []string{"load 40"})
	later.Generated = whole.Generated.Add(time.Hour)
	later.Results = []*result{row("migrate", 4, 6, 10), row("backup", 4, 8, 4)}
	later.Data = []string{"4x: demo 1000000 traces; pgbench -s 4"}

	whole.merge(later)
	var got []string
	for _, x := range whole.Results {
		got = append(got, fmt.Sprintf("%s %d× %.2f %s", x.Step, x.Scale, x.Ratio, met(x.Met)))
	}
	want := []string{"backup 1× 1.00 **not met**", "backup 4× 2.00 **not met**", "migrate 1× 0.20 met", "migrate 4× 0.60 **not met**"}
	if strings.Join(got, "; ") != strings.Join(want, "; ") {
		t.Errorf("rows:\n got %q\nwant %q", got, want)
	}
	md := whole.markdown()
	for _, w := range []string{"migrate at 4×; backup at 4× measured in a later run", "load 40", "run of " + later.Generated.Format("2006-01-02 15:04 UTC") + ": 4x: demo 1000000 traces; pgbench -s 4"} {
		if !strings.Contains(md, w) {
			t.Errorf("RESULTS.md lacks %q:\n%s", w, md)
		}
	}
}
