package main

import (
	"slices"
	"testing"
)

func TestParseScales(t *testing.T) {
	cases := []struct {
		in   string
		want []int // nil: an error
	}{
		{"1,4", []int{1, 4}},
		{"1, 10", []int{1, 10}},
		{"10", []int{10}},
		{"4,1", nil},
		{"1,1", nil},
		{"0,10", nil},
		{"1,x", nil},
		{"", nil},
	}
	for _, c := range cases {
		got, err := parseScales(c.in)
		if c.want == nil && err == nil {
			t.Errorf("parseScales(%q) = %v, want an error", c.in, got)
		}
		if c.want != nil && (err != nil || !slices.Equal(got, c.want)) {
			t.Errorf("parseScales(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
}
