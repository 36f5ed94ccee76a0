package demo

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// world is the fixed cast both databases share: the projects that own ClickHouse rows are the
// projects in PostgreSQL, so a restored pair is checkably consistent.
type world struct {
	orgs     []string
	projects []project
	users    []string
}

type project struct{ id, org, name string }

const (
	demoOrgs        = 4
	projectsPerOrg  = 3
	demoUsers       = 200
	observationsMax = 5
	scoresMax       = 3
)

var (
	environments = []string{"production", "production", "production", "staging", "development"}
	traceNames   = []string{"chat-completion", "rag-pipeline", "summarize-ticket", "classify-intent", "agent-run", "embed-documents", "qa-eval"}
	obsNames     = []string{"retrieve", "rerank", "llm-call", "tool:search", "tool:calculator", "parse-output", "embed"}
	models       = []string{"gpt-4o", "gpt-4o-mini", "claude-3-5-sonnet", "llama-3-70b", "mistral-large"}
	scoreNames   = []string{"accuracy", "helpfulness", "toxicity", "user-feedback", "latency-ok"}
	levels       = []string{"DEFAULT", "DEFAULT", "DEFAULT", "DEBUG", "WARNING", "ERROR"}
	words        = strings.Fields(`the customer asked about refund policy order shipping delay invoice account password reset
		model answer context document retrieved summary please explain why how when which latency token budget
		cluster replica partition backup restore schedule support ticket escalation priority feature request bug`)
)

func newWorld(seed uint64) *world {
	w := &world{}
	for o := 0; o < demoOrgs; o++ {
		org := fmt.Sprintf("org-%02d", o+1)
		w.orgs = append(w.orgs, org)
		for p := 0; p < projectsPerOrg; p++ {
			id := fmt.Sprintf("proj-%02d-%02d", o+1, p+1)
			w.projects = append(w.projects, project{id: id, org: org, name: fmt.Sprintf("%s project %d", org, p+1)})
		}
	}
	for u := 0; u < demoUsers; u++ {
		w.users = append(w.users, fmt.Sprintf("user-%04d", u+1))
	}
	return w
}

// rng returns the generator for one chunk: chunks can then be made in any order, or in
// parallel, and still yield the same rows for a seed.
func rng(seed uint64, stream uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, stream)) }

func pick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

func sentence(r *rand.Rand, min, max int) string {
	n := min + r.IntN(max-min+1)
	var b strings.Builder
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(pick(r, words))
	}
	return b.String()
}

// momentIn returns a time inside one of the months, spread so that every month gets rows.
func momentIn(r *rand.Rand, start time.Time, months int) time.Time {
	m := start.AddDate(0, r.IntN(months), 0)
	span := m.AddDate(0, 1, 0).Sub(m)
	return m.Add(time.Duration(r.Int64N(int64(span/time.Second))) * time.Second)
}

func ptr[T any](v T) *T { return &v }
