package replay

import (
	"regexp"
	"strings"
)

// The two key shapes Langfuse's replay route accepts, as its source matches them: an
// OpenTelemetry batch under otel/{project}/{yyyy}/{mm}/{dd}/{hh}/{mm}/, and an event under
// {project}/{entityType}/{eventBodyId}/{eventId}.json (the body id may hold slashes).
var (
	otelKey     = regexp.MustCompile(`^otel/([^/]+)/(\d{4})/(\d{2})/(\d{2})/(\d{2})/(\d{2})/([^.]+)\.json$`)
	standardKey = regexp.MustCompile(`^([^/]+)/([^/]+)/(.+)/([^/]+)\.json$`)
)

// ReplayableTypes are the entity types the route re-queues: those whose "<type>-create" is one of
// Langfuse's ingestion event types. Langfuse writes events under trace, observation and score
// (replayable) and sdk_log and dataset_run_item (not: the route answers "Unsupported replay
// type"), so those are named here before they are sent.
var ReplayableTypes = map[string]bool{
	"trace": true, "observation": true, "score": true, "span": true, "generation": true, "event": true,
	"agent": true, "tool": true, "chain": true, "retriever": true, "evaluator": true, "embedding": true,
	"guardrail": true, "dataset-run-item": true,
}

// OtelType is the entity type a selection counts OpenTelemetry batches under.
const OtelType = "otel"

// Classify says which project and entity type a key is for, or why the route would refuse it.
func Classify(key string) (project, entity, reason string) {
	if m := otelKey.FindStringSubmatch(key); m != nil {
		return m[1], OtelType, ""
	}
	if strings.HasPrefix(key, "otel/") && strings.HasSuffix(key, ".json") {
		return "", "", "malformed OpenTelemetry key: want otel/{project}/{yyyy}/{mm}/{dd}/{hh}/{mm}/{id}.json"
	}
	m := standardKey.FindStringSubmatch(key)
	switch {
	case !strings.HasSuffix(key, ".json"):
		return "", "", "not a .json event"
	case m == nil:
		return "", "", "malformed key: want {project}/{entityType}/{eventBodyId}/{eventId}.json"
	case !ReplayableTypes[m[2]]:
		return m[1], m[2], "unsupported replay type " + m[2] + ": Langfuse has no " + m[2] + "-create event"
	}
	return m[1], m[2], ""
}
