package restore

import (
	"strings"
	"testing"
)

func TestReachSummaryAndExit(t *testing.T) {
	tests := []struct {
		name       string
		configured []string
		reached    []string
		allow      bool
		wantErr    bool
		summary    []string // fragments the summary must hold
		notSummary string   // a fragment it must not
	}{
		{name: "all reached", configured: []string{"ch1:9000", "ch2:9000"}, reached: []string{"ch1:9000", "ch2:9000"},
			summary: []string{"every replica", "ch1:9000, ch2:9000"}, notSummary: "NOT"},
		{name: "one unreachable fails", configured: []string{"ch1:9000", "ch2:9000"}, reached: []string{"ch1:9000"}, wantErr: true,
			summary: []string{"verified on ch1:9000", "NOT verified on ch2:9000"}, notSummary: "every"},
		{name: "one unreachable allowed", configured: []string{"ch1:9000", "ch2:9000", "ch3:9000"}, reached: []string{"ch2:9000"}, allow: true,
			summary: []string{"NOT verified on ch1:9000, ch3:9000"}, notSummary: "every"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := reachOf(tt.configured, func(a string) bool { return strings.Contains(strings.Join(tt.reached, " "), a) })
			s := rc.Summary()
			for _, f := range tt.summary {
				if !strings.Contains(s, f) {
					t.Errorf("summary %q lacks %q", s, f)
				}
			}
			if strings.Contains(s, tt.notSummary) {
				t.Errorf("summary %q must not say %q", s, tt.notSummary)
			}
			if note := rc.planNote(); (note != "") != (len(rc.Unreachable) > 0) || (note != "" && !strings.Contains(note, rc.Unreachable[0])) {
				t.Errorf("plan note %q for unreachable %v", note, rc.Unreachable)
			}
			err := rc.Err(tt.allow)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Err(%v) = %v, want error %v", tt.allow, err, tt.wantErr)
			}
			if err != nil {
				for _, a := range rc.Unreachable {
					if !strings.Contains(err.Error(), a) || !strings.Contains(err.Error(), "--allow-unreachable") {
						t.Errorf("error %q must name %s and --allow-unreachable", err, a)
					}
				}
			}
		})
	}
}
