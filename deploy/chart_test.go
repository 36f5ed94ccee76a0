package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	toml "github.com/pelletier/go-toml/v2"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"

	"github.com/tracevault/tracevault/config"
	"github.com/tracevault/tracevault/jobs"
	"github.com/tracevault/tracevault/web"
)

const (
	chartDir = "helm/tracevault"
	clientID = "00000000-1111-2222-3333-444444444444"
)

// serviceMonitor and prometheusRule hold the fields the chart writes of the Prometheus
// operator's kinds; decoding strictly into them catches a misspelt or misplaced field.
type serviceMonitor struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metaObject        `json:"metadata"`
	Spec       serviceMonitorSpc `json:"spec"`
}

type metaObject struct {
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels"`
}

type serviceMonitorSpc struct {
	Selector struct {
		MatchLabels map[string]string `json:"matchLabels"`
	} `json:"selector"`
	Endpoints []struct {
		Port          string `json:"port"`
		Path          string `json:"path"`
		Interval      string `json:"interval"`
		Authorization *struct {
			Type        string                   `json:"type"`
			Credentials corev1.SecretKeySelector `json:"credentials"`
		} `json:"authorization"`
	} `json:"endpoints"`
}

type prometheusRule struct {
	APIVersion string     `json:"apiVersion"`
	Kind       string     `json:"kind"`
	Metadata   metaObject `json:"metadata"`
	Spec       struct {
		Groups []struct {
			Name  string `json:"name"`
			Rules []struct {
				Alert       string            `json:"alert"`
				Expr        string            `json:"expr"`
				For         string            `json:"for"`
				Labels      map[string]string `json:"labels"`
				Annotations map[string]string `json:"annotations"`
			} `json:"rules"`
		} `json:"groups"`
	} `json:"spec"`
}

// newObject maps each apiVersion/kind the chart may render to the type it must decode into.
var newObject = map[string]func() any{
	"v1/ConfigMap":                            func() any { return &corev1.ConfigMap{} },
	"v1/ServiceAccount":                       func() any { return &corev1.ServiceAccount{} },
	"v1/Service":                              func() any { return &corev1.Service{} },
	"apps/v1/Deployment":                      func() any { return &appsv1.Deployment{} },
	"batch/v1/CronJob":                        func() any { return &batchv1.CronJob{} },
	"batch/v1/Job":                            func() any { return &batchv1.Job{} },
	"policy/v1/PodDisruptionBudget":           func() any { return &policyv1.PodDisruptionBudget{} },
	"networking.k8s.io/v1/Ingress":            func() any { return &networkingv1.Ingress{} },
	"networking.k8s.io/v1/NetworkPolicy":      func() any { return &networkingv1.NetworkPolicy{} },
	"monitoring.coreos.com/v1/ServiceMonitor": func() any { return &serviceMonitor{} },
	"monitoring.coreos.com/v1/PrometheusRule": func() any { return &prometheusRule{} },
}

// rendered is one chart rendering: every object decoded, by kind and name, and NOTES.txt.
type rendered struct {
	objects map[string]any // "Kind/name"
	notes   string
}

func loadChart(t *testing.T) *chart.Chart {
	t.Helper()
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatalf("load chart %s: %v", chartDir, err)
	}
	return ch
}

// render renders the chart as `helm template --strict` would, with the values schema checked,
// and decodes every manifest strictly.
// Values are given in layers, later ones overriding earlier ones key by key, as helm -f does.
func render(t *testing.T, ch *chart.Chart, layers ...string) (*rendered, error) {
	t.Helper()
	vals := map[string]any{}
	for i := len(layers) - 1; i >= 0; i-- {
		var layer map[string]any
		if err := yaml.Unmarshal([]byte(layers[i]), &layer); err != nil {
			t.Fatalf("test values: %v", err)
		}
		vals = chartutil.MergeTables(vals, layer)
	}
	opts := chartutil.ReleaseOptions{Name: "tv", Namespace: "langfuse", Revision: 1, IsInstall: true}
	top, err := chartutil.ToRenderValues(ch, vals, opts, chartutil.DefaultCapabilities)
	if err != nil {
		return nil, err
	}
	files, err := engine.Engine{Strict: true}.Render(ch, top)
	if err != nil {
		return nil, err
	}
	out := &rendered{objects: map[string]any{}}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if strings.HasSuffix(name, "NOTES.txt") {
			out.notes = files[name]
			continue
		}
		if !strings.HasSuffix(name, ".yaml") {
			continue
		}
		for _, doc := range strings.Split(files[name], "\n---") {
			if err := out.decode(name, doc); err != nil {
				t.Fatalf("%s: %v\n%s", name, err, doc)
			}
		}
	}
	return out, nil
}

func (r *rendered) decode(file, doc string) error {
	js, err := yaml.YAMLToJSON([]byte(doc))
	if err != nil {
		return fmt.Errorf("not YAML: %w", err)
	}
	if string(js) == "null" {
		return nil // a template that rendered nothing
	}
	var head struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(js, &head); err != nil {
		return err
	}
	mk, ok := newObject[head.APIVersion+"/"+head.Kind]
	if !ok {
		return fmt.Errorf("unexpected kind %s/%s", head.APIVersion, head.Kind)
	}
	obj := mk()
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(obj); err != nil {
		return fmt.Errorf("decode %s strictly: %w", head.Kind, err)
	}
	key := head.Kind + "/" + head.Metadata.Name
	if _, dup := r.objects[key]; dup {
		return fmt.Errorf("%s rendered twice", key)
	}
	r.objects[key] = obj
	return nil
}

// get returns the one object of type T the rendering holds, or nil when there is none.
func get[T any](t *testing.T, r *rendered) *T {
	t.Helper()
	var found *T
	for key, o := range r.objects {
		if v, ok := o.(*T); ok {
			if found != nil {
				t.Fatalf("more than one %T (%s)", v, key)
			}
			found = v
		}
	}
	return found
}

func kinds(r *rendered) []string {
	var ks []string
	for key := range r.objects {
		ks = append(ks, strings.SplitN(key, "/", 2)[0])
	}
	sort.Strings(ks)
	return ks
}

// wiValues is what a user gives at least: the identity and the storage account.
const wiValues = "azure: {workloadIdentity: {clientId: " + clientID + "}}\nconfig: {storage: {account_name: langfusebackups}}\n"

func TestChartLintEquivalent(t *testing.T) {
	ch := loadChart(t)
	if err := ch.Metadata.Validate(); err != nil {
		t.Fatalf("Chart.yaml: %v", err)
	}
	if err := ch.Validate(); err != nil {
		t.Fatalf("chart: %v", err)
	}
	if ch.Schema == nil {
		t.Fatal("the chart has no values.schema.json: values would not be checked on render")
	}
	// helm lint renders the chart's own values.yaml; without a client ID that must stop with a
	// message saying what to set, not render a ServiceAccount Workload Identity cannot use.
	_, err := render(t, ch, "")
	if err == nil || !strings.Contains(err.Error(), "azure.workloadIdentity.clientId is required") {
		t.Fatalf("default values without a client ID: got %v, want the required clientId error", err)
	}
}

// TestChartValuesMirrorExampleConfig keeps values.yaml's config the one mirror of
// config.example.toml: same tables, same keys.
func TestChartValuesMirrorExampleConfig(t *testing.T) {
	ch := loadChart(t)
	example, err := os.ReadFile(filepath.Join(moduleRoot(t), "config.example.toml"))
	if err != nil {
		t.Fatal(err)
	}
	var ex map[string]any
	if err := toml.Unmarshal(example, &ex); err != nil {
		t.Fatalf("config.example.toml: %v", err)
	}
	cfg, ok := ch.Values["config"].(map[string]any)
	if !ok {
		t.Fatal("values.yaml has no config table")
	}
	want, got := keyPaths("", ex), keyPaths("", cfg)
	if strings.Join(want, "\n") != strings.Join(got, "\n") {
		t.Errorf("values.yaml config keys differ from config.example.toml\nonly in example: %v\nonly in values: %v",
			minus(want, got), minus(got, want))
	}
}

// keyPaths lists every key as a dotted path; the tables of an array share one path ("jobs.name").
func keyPaths(prefix string, v any) []string {
	set := map[string]bool{}
	var walk func(string, any)
	walk = func(p string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, c := range x {
				walk(p+k+".", c)
			}
		case []any:
			if len(x) > 0 {
				if _, ok := x[0].(map[string]any); ok {
					for _, c := range x {
						walk(p, c)
					}
					return
				}
			}
			set[strings.TrimSuffix(p, ".")] = true
		default:
			set[strings.TrimSuffix(p, ".")] = true
		}
	}
	walk(prefix, v)
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func minus(a, b []string) []string {
	in := map[string]bool{}
	for _, s := range b {
		in[s] = true
	}
	var out []string
	for _, s := range a {
		if !in[s] {
			out = append(out, s)
		}
	}
	return out
}

func TestChartRenders(t *testing.T) {
	ch := loadChart(t)
	cases := []struct {
		name   string
		values string
		kinds  []string // every kind rendered, sorted
		check  func(t *testing.T, r *rendered)
	}{
		{
			name:   "default",
			values: "",
			kinds:  []string{"ConfigMap", "Deployment", "NetworkPolicy", "PodDisruptionBudget", "Service", "ServiceAccount"},
			check: func(t *testing.T, r *rendered) {
				d := get[appsv1.Deployment](t, r)
				if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
					t.Errorf("replicas = %v, want 2 (occurrences are claimed through ZooKeeper)", d.Spec.Replicas)
				}
				ru := d.Spec.Strategy.RollingUpdate
				if d.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType || ru == nil || ru.MaxUnavailable.IntValue() != 0 {
					t.Errorf("strategy %+v: want a rolling update that keeps every pod until its successor is ready", d.Spec.Strategy)
				}
				if n := len(d.Spec.Template.Spec.TopologySpreadConstraints); n != 2 {
					t.Errorf("%d topology spread constraints, want zone and hostname", n)
				}
				for _, c := range d.Spec.Template.Spec.TopologySpreadConstraints {
					if !subset(c.LabelSelector.MatchLabels, d.Spec.Template.Labels) {
						t.Errorf("topology spread selector %v does not select the pods %v", c.LabelSelector.MatchLabels, d.Spec.Template.Labels)
					}
				}
				if a := d.Spec.Template.Spec.Containers[0].Args; strings.Join(a, " ") != "serve --log-format json --grace 300s" {
					t.Errorf("args %q", a)
				}
				if g := d.Spec.Template.Spec.TerminationGracePeriodSeconds; g == nil || *g != 330 {
					t.Errorf("terminationGracePeriodSeconds %v, want --grace + 30", g)
				}
				pdb := get[policyv1.PodDisruptionBudget](t, r)
				if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() != 1 || !subset(pdb.Spec.Selector.MatchLabels, d.Spec.Template.Labels) {
					t.Errorf("PDB %+v does not keep one daemon pod", pdb.Spec)
				}
				svc := get[corev1.Service](t, r)
				if !svc.Spec.PublishNotReadyAddresses {
					t.Error("the Service hides unready pods: the status page would be unreachable while it reports the failure")
				}
				if !subset(svc.Spec.Selector, d.Spec.Template.Labels) {
					t.Errorf("Service selector %v does not select the daemon pods", svc.Spec.Selector)
				}
				checkNetworkPolicy(t, r, d.Spec.Template.Labels, true)
			},
		},
		{
			name: "minimal",
			values: `azure: {workloadIdentity: {enabled: false}}
secretEnv: {CLICKHOUSE_PASSWORD: null}
networkPolicy: {enabled: false}
podDisruptionBudget: {enabled: false}
topologySpread: {enabled: false}
replicaCount: 1
config:
  storage: {url: "file:///var/lib/tracevault/repo"}
  postgres: {dsn: "env:TRACEVAULT_PG_DSN"}
  clickhouse: {password: ""}
`,
			kinds: []string{"ConfigMap", "Deployment", "Service", "ServiceAccount"},
			check: func(t *testing.T, r *rendered) {
				sa := get[corev1.ServiceAccount](t, r)
				if _, ok := sa.Annotations["azure.workload.identity/client-id"]; ok {
					t.Error("Workload Identity disabled, yet the ServiceAccount is annotated")
				}
				d := get[appsv1.Deployment](t, r)
				if _, ok := d.Spec.Template.Labels["azure.workload.identity/use"]; ok {
					t.Error("Workload Identity disabled, yet the pods carry its label")
				}
				if d.Spec.Template.Spec.TopologySpreadConstraints != nil {
					t.Error("topology spread disabled, yet rendered")
				}
			},
		},
		{
			name: "everything on",
			values: `azure: {workloadIdentity: {clientId: ` + clientID + `, tenantId: tenant}}
config:
  storage: {account_name: langfusebackups}
  web: {token: "env:TRACEVAULT_WEB_TOKEN", require_token_for_read: true}
secretEnv: {TRACEVAULT_WEB_TOKEN: web-token}
ageIdentity: {secretName: tracevault-age}
ingress: {enabled: true, className: nginx, tls: [{hosts: [tracevault.example.com], secretName: tv-tls}]}
metrics:
  serviceMonitor: {enabled: true, labels: {release: prometheus}}
  prometheusRule: {enabled: true, drillMaxAgeSeconds: 172800, backups: [{job: nightly, intervalSeconds: 86400}, {job: hourly, intervalSeconds: 3600}]}
`,
			kinds: []string{"ConfigMap", "Deployment", "Ingress", "NetworkPolicy", "PodDisruptionBudget", "PrometheusRule", "Service", "ServiceAccount", "ServiceMonitor"},
			check: func(t *testing.T, r *rendered) {
				sm := get[serviceMonitor](t, r)
				svc := get[corev1.Service](t, r)
				if !subset(sm.Spec.Selector.MatchLabels, svc.Labels) {
					t.Errorf("ServiceMonitor selector %v does not select the Service labelled %v", sm.Spec.Selector.MatchLabels, svc.Labels)
				}
				if e := sm.Spec.Endpoints; len(e) != 1 || e[0].Port != "http" || e[0].Path != "/metrics" || e[0].Authorization == nil {
					t.Errorf("ServiceMonitor endpoints %+v: want /metrics on http with the token (require_token_for_read)", e)
				}
				checkRules(t, get[prometheusRule](t, r))
				d := get[appsv1.Deployment](t, r)
				mounted := false
				for _, m := range d.Spec.Template.Spec.Containers[0].VolumeMounts {
					mounted = mounted || (m.Name == "age" && m.MountPath == "/etc/tracevault/age" && m.ReadOnly)
				}
				if !mounted {
					t.Error("ageIdentity set, yet its Secret is not mounted read-only at /etc/tracevault/age")
				}
				ing := get[networkingv1.Ingress](t, r)
				if b := ing.Spec.Rules[0].HTTP.Paths[0].Backend.Service; b == nil || b.Name != svc.Name || b.Port.Name != "http" {
					t.Errorf("Ingress backend %+v, want Service %s port http", b, svc.Name)
				}
				if cfg := configTOML(t, r); !strings.Contains(cfg, `secure_cookies = "always"`) {
					t.Errorf("the Ingress ends TLS, yet the login cookie is not always Secure:\n%s", cfg)
				}
			},
		},
		{
			name:   "cronjob",
			values: "mode: cronjob\ncronjob: {schedule: '15 2 * * *', args: [--only, clickhouse]}\n",
			kinds:  []string{"ConfigMap", "CronJob", "NetworkPolicy", "ServiceAccount"},
			check: func(t *testing.T, r *rendered) {
				cj := get[batchv1.CronJob](t, r)
				if cj.Spec.Schedule != "15 2 * * *" || cj.Spec.ConcurrencyPolicy != batchv1.ForbidConcurrent {
					t.Errorf("CronJob schedule %q policy %q", cj.Spec.Schedule, cj.Spec.ConcurrencyPolicy)
				}
				if a := cj.Spec.JobTemplate.Spec.Template.Spec.Containers[0].Args; strings.Join(a, " ") != "backup --log-format json --only clickhouse" {
					t.Errorf("args %q, want one `tracevault backup`", a)
				}
				checkNetworkPolicy(t, r, cj.Spec.JobTemplate.Spec.Template.Labels, false)
			},
		},
		{
			name:   "restore job",
			values: "restore: {enabled: true, snapshot: latest, args: '--only clickhouse --tables default.traces  --dry-run'}\n",
			kinds:  []string{"ConfigMap", "Deployment", "Job", "NetworkPolicy", "PodDisruptionBudget", "Service", "ServiceAccount"},
			check: func(t *testing.T, r *rendered) {
				j := get[batchv1.Job](t, r)
				if a := j.Spec.Template.Spec.Containers[0].Args; strings.Join(a, " ") != "restore latest --only clickhouse --tables default.traces --dry-run --log-format json" {
					t.Errorf("restore args %q", a)
				}
				if j.Spec.BackoffLimit == nil || *j.Spec.BackoffLimit != 0 {
					t.Errorf("backoffLimit %v: a restore must not be retried behind the operator's back", j.Spec.BackoffLimit)
				}
				d := get[appsv1.Deployment](t, r)
				if subset(d.Spec.Selector.MatchLabels, j.Spec.Template.Labels) {
					t.Error("the Deployment's selector selects the restore Job's pod")
				}
			},
		},
		{
			name:   "restore-replica job",
			values: "restore: {enabled: true, command: restore-replica, snapshot: latest, args: [ch3]}\n",
			kinds:  []string{"ConfigMap", "Deployment", "Job", "NetworkPolicy", "PodDisruptionBudget", "Service", "ServiceAccount"},
			check: func(t *testing.T, r *rendered) {
				j := get[batchv1.Job](t, r)
				if a := j.Spec.Template.Spec.Containers[0].Args; strings.Join(a, " ") != "restore-replica --from-snapshot latest ch3 --log-format json" {
					t.Errorf("restore-replica args %q", a)
				}
			},
		},
		{
			name: "sidecar",
			values: `mode: sidecar
config:
  clickhouse: {mode: freeze, data_path: /bitnami/clickhouse/data}
`,
			kinds: []string{"ConfigMap", "ServiceAccount"},
			check: func(t *testing.T, r *rendered) {
				checkSidecar(t, r.notes, "/bitnami/clickhouse")
				if cfg := configTOML(t, r); !strings.Contains(cfg, `data_path = "/bitnami/clickhouse/data"`) || !strings.Contains(cfg, `mode = "freeze"`) {
					t.Errorf("sidecar configuration is not freeze mode on the mounted data path:\n%s", cfg)
				}
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := render(t, ch, wiValues, tc.values)
			if err != nil {
				t.Fatalf("render: %v", err)
			}
			if got := kinds(r); strings.Join(got, " ") != strings.Join(tc.kinds, " ") {
				t.Fatalf("kinds %v, want %v", got, tc.kinds)
			}
			checkWorkloadIdentity(t, r)
			for _, ps := range podSpecs(r) {
				checkPodSecurity(t, ps.name, ps.spec)
				checkEnvCoversConfig(t, ps.name, ps.spec, configTOML(t, r))
			}
			checkConfigPasses(t, r)
			tc.check(t, r)
		})
	}
}

func TestChartRefusesBadValues(t *testing.T) {
	ch := loadChart(t)
	cases := []struct{ name, values, want string }{
		{"typo in a config key", "config: {storage: {acount_name: x}}\n", "acount_name"},
		{"unknown mode", "mode: daemonset\n", "mode"},
		{"client ID not a GUID", "azure: {workloadIdentity: {clientId: my-identity}}\n", "clientId"},
		{"restore without snapshot", "restore: {enabled: true}\n", "restore.snapshot is required"},
		{"sidecar in logical mode", "mode: sidecar\n", "config.clickhouse.mode=freeze"},
		{"azblob without account", "config: {storage: {account_name: ''}}\n", "config.storage.account_name is required"},
		{"bad ZooKeeper size", "metrics: {prometheusRule: {enabled: true}}\nconfig: {zookeeper: {warn_data_size: 1GB}}\n", "warn_data_size"},
		{"bad secure_cookies", "config: {web: {secure_cookies: yes-please}}\n", "secure_cookies"},
	}
	// A secret typed into values would land in the ConfigMap: every secret-bearing key takes
	// only a reference, env:NAME or ${NAME}, set from a Secret.
	for _, key := range secretValueKeys {
		cases = append(cases, struct{ name, values, want string }{"literal " + key, nestedValue(key, "hunter2-literal"), key[strings.LastIndex(key, ".")+1:]})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := render(t, ch, wiValues, tc.values)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error naming %q", err, tc.want)
			}
		})
	}
}

// secretValueKeys are the values that carry a secret: the config's Secret fields (config/load.go
// resolveSecrets) and the prune identity's storage credentials.
var secretValueKeys = []string{
	"config.storage.connection_string", "config.storage.account_key", "config.storage.sas_token",
	"config.storage.encryption.passphrase", "config.blobs.connection_string", "config.blobs.account_key",
	"config.blobs.sas_token", "config.langfuse.admin_api_key", "config.postgres.dsn",
	"config.clickhouse.password", "config.zookeeper.identity", "config.web.token",
	"pruneJob.storage.connection_string", "pruneJob.storage.account_key", "pruneJob.storage.sas_token",
}

// nestedValue writes key (dotted) = v as a YAML values document.
func nestedValue(key, v string) string {
	parts := strings.Split(key, ".")
	doc := fmt.Sprintf("%q", v)
	for i := len(parts) - 1; i >= 0; i-- {
		doc = fmt.Sprintf("{%s: %s}", parts[i], doc)
	}
	return doc + "\n"
}

// TestChartSecretReferencesPass: the env:NAME and ${NAME} forms, and an empty (unset) value, pass
// the schema for every secret-bearing key.
func TestChartSecretReferencesPass(t *testing.T) {
	ch := loadChart(t)
	for _, key := range secretValueKeys {
		for _, v := range []string{"env:TV_SECRET", "${TV_SECRET}", ""} {
			if _, err := renderSchemaOnly(ch, wiValues, nestedValue(key, v)); err != nil {
				t.Errorf("%s = %q refused: %v", key, v, err)
			}
		}
	}
}

// renderSchemaOnly checks values against the chart's schema, as helm does before rendering.
func renderSchemaOnly(ch *chart.Chart, layers ...string) (map[string]any, error) {
	vals := map[string]any{}
	for i := len(layers) - 1; i >= 0; i-- {
		var layer map[string]any
		if err := yaml.Unmarshal([]byte(layers[i]), &layer); err != nil {
			return nil, err
		}
		vals = chartutil.MergeTables(vals, layer)
	}
	opts := chartutil.ReleaseOptions{Name: "tv", Namespace: "langfuse", Revision: 1, IsInstall: true}
	return chartutil.ToRenderValues(ch, vals, opts, chartutil.DefaultCapabilities)
}

type namedPodSpec struct {
	name   string
	labels map[string]string
	spec   *corev1.PodSpec
}

func podSpecs(r *rendered) []namedPodSpec {
	var out []namedPodSpec
	for key, o := range r.objects {
		switch v := o.(type) {
		case *appsv1.Deployment:
			out = append(out, namedPodSpec{key, v.Spec.Template.Labels, &v.Spec.Template.Spec})
		case *batchv1.CronJob:
			out = append(out, namedPodSpec{key, v.Spec.JobTemplate.Spec.Template.Labels, &v.Spec.JobTemplate.Spec.Template.Spec})
		case *batchv1.Job:
			out = append(out, namedPodSpec{key, v.Spec.Template.Labels, &v.Spec.Template.Spec})
		}
	}
	return out
}

// checkWorkloadIdentity: with Workload Identity on, the ServiceAccount names the identity AND every
// pod carries the label; the webhook needs both.
func checkWorkloadIdentity(t *testing.T, r *rendered) {
	t.Helper()
	sa := get[corev1.ServiceAccount](t, r)
	if sa == nil {
		t.Fatal("no ServiceAccount")
	}
	on := sa.Annotations["azure.workload.identity/client-id"] != ""
	if on && sa.Annotations["azure.workload.identity/client-id"] != clientID {
		t.Errorf("client-id annotation %q, want %q", sa.Annotations["azure.workload.identity/client-id"], clientID)
	}
	for _, ps := range podSpecs(r) {
		if ps.spec.ServiceAccountName != sa.Name {
			t.Errorf("%s runs as ServiceAccount %q, not the chart's %q", ps.name, ps.spec.ServiceAccountName, sa.Name)
		}
		if on && ps.labels["azure.workload.identity/use"] != "true" {
			t.Errorf("%s: pod label azure.workload.identity/use=\"true\" missing; the webhook would inject no token", ps.name)
		}
	}
}

func checkPodSecurity(t *testing.T, name string, ps *corev1.PodSpec) {
	t.Helper()
	psc := ps.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
		t.Errorf("%s: pod must run as a numeric non-root user: %+v", name, psc)
	}
	if psc == nil || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("%s: seccomp profile must be RuntimeDefault", name)
	}
	if len(ps.Containers) != 1 {
		t.Fatalf("%s: %d containers", name, len(ps.Containers))
	}
	c := ps.Containers[0]
	sc := c.SecurityContext
	if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" {
		t.Errorf("%s: container security context %+v: want no privilege escalation, read-only root, drop ALL", name, sc)
	}
	tmp := false
	for _, m := range c.VolumeMounts {
		if m.MountPath == "/tmp" {
			for _, v := range ps.Volumes {
				tmp = tmp || (v.Name == m.Name && v.EmptyDir != nil)
			}
		}
	}
	if !tmp {
		t.Errorf("%s: /tmp is not a writable emptyDir; the root filesystem is read-only", name)
	}
	if c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("%s: memory request and limit must be set", name)
	}
}

var envRef = regexp.MustCompile(`"(?:env:([A-Za-z_][A-Za-z0-9_]*)|\$\{([A-Za-z_][A-Za-z0-9_]*)\})"`)

// checkEnvCoversConfig: every secret the TOML refers to is set in the container from a Secret.
func checkEnvCoversConfig(t *testing.T, name string, ps *corev1.PodSpec, cfg string) {
	t.Helper()
	env := map[string]corev1.EnvVar{}
	for _, e := range ps.Containers[0].Env {
		env[e.Name] = e
	}
	if env["TRACEVAULT_CONFIG"].Value != "/etc/tracevault/tracevault.toml" {
		t.Errorf("%s: TRACEVAULT_CONFIG = %q", name, env["TRACEVAULT_CONFIG"].Value)
	}
	for _, m := range envRef.FindAllStringSubmatch(cfg, -1) {
		v := m[1] + m[2]
		e, ok := env[v]
		if !ok {
			t.Errorf("%s: the configuration reads %s, which the container does not set", name, v)
			continue
		}
		if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
			t.Errorf("%s: %s is not taken from a Secret", name, v)
		}
	}
}

func configTOML(t *testing.T, r *rendered) string {
	t.Helper()
	cm := get[corev1.ConfigMap](t, r)
	if cm == nil || cm.Data["tracevault.toml"] == "" {
		t.Fatal("no ConfigMap with tracevault.toml")
	}
	return cm.Data["tracevault.toml"]
}

// checkConfigPasses runs the real binary's `config check` on the rendered TOML, with every
// variable the pods set from Secrets given a placeholder.
func checkConfigPasses(t *testing.T, r *rendered) {
	t.Helper()
	cfg := configTOML(t, r)
	env := map[string]string{}
	for _, ps := range podSpecs(r) {
		for _, e := range ps.spec.Containers[0].Env {
			if e.ValueFrom != nil {
				env[e.Name] = "postgres://u:p@db:5432/langfuse"
			}
		}
	}
	if len(podSpecs(r)) == 0 { // sidecar: the env is in the NOTES snippet; set what the TOML asks
		for _, m := range envRef.FindAllStringSubmatch(cfg, -1) {
			env[m[1]+m[2]] = "postgres://u:p@db:5432/langfuse"
		}
	}
	out, err := configCheck(t, cfg, env)
	if err != nil {
		t.Fatalf("tracevault config check refused the rendered configuration: %v\n%s\n%s", err, out, cfg)
	}
	if !strings.Contains(out, "valid") {
		t.Errorf("config check said %q", out)
	}
}

// listenPort is the port of web.listen in the rendered TOML: the one the binary serves.
func listenPort(t *testing.T, cfg string) int32 {
	t.Helper()
	var c struct {
		Web struct {
			Listen string `toml:"listen"`
		} `toml:"web"`
	}
	if err := toml.Unmarshal([]byte(cfg), &c); err != nil {
		t.Fatal(err)
	}
	i := strings.LastIndex(c.Web.Listen, ":")
	p, err := strconv.Atoi(c.Web.Listen[i+1:])
	if err != nil {
		t.Fatalf("web.listen %q: %v", c.Web.Listen, err)
	}
	return int32(p)
}

// statusOnly answers the status page's readiness read; the probes need nothing else.
type statusOnly struct{ web.Source }

func (statusOnly) Status(context.Context) (jobs.Status, error) { return jobs.Status{}, nil }

// TestChartProbesHitTheBinarysEndpoints sends the Deployment's probes to the status page the
// binary serves (web.Server, as `tracevault serve` builds it), on the port the TOML listens on.
func TestChartProbesHitTheBinarysEndpoints(t *testing.T) {
	r, err := render(t, loadChart(t), wiValues, "config: {web: {listen: '0.0.0.0:9555'}}\n")
	if err != nil {
		t.Fatal(err)
	}
	d := get[appsv1.Deployment](t, r)
	c := d.Spec.Template.Spec.Containers[0]
	port := listenPort(t, configTOML(t, r))
	if len(c.Ports) != 1 || c.Ports[0].Name != "http" || c.Ports[0].ContainerPort != port {
		t.Fatalf("container ports %+v, want http = %d (web.listen)", c.Ports, port)
	}
	srv := httptest.NewServer(web.New(web.Options{Version: "test"}, statusOnly{}).HTTPServer().Handler)
	defer srv.Close()
	for _, p := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{{"liveness", c.LivenessProbe, "/healthz"}, {"readiness", c.ReadinessProbe, "/readyz"}} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Fatalf("no %s HTTP probe", p.name)
		}
		g := p.probe.HTTPGet
		if g.Port.String() != "http" || g.Path != p.path {
			t.Errorf("%s probe GET %s on %s, want %s on http", p.name, g.Path, g.Port.String(), p.path)
		}
		resp, err := http.Get(srv.URL + g.Path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s probe: the status page answers %s with %d", p.name, g.Path, resp.StatusCode)
		}
	}
}

func checkNetworkPolicy(t *testing.T, r *rendered, podLabels map[string]string, ingress bool) {
	t.Helper()
	np := get[networkingv1.NetworkPolicy](t, r)
	if np == nil {
		t.Fatal("no NetworkPolicy")
	}
	if !subset(np.Spec.PodSelector.MatchLabels, podLabels) {
		t.Errorf("NetworkPolicy selector %v does not select pods %v", np.Spec.PodSelector.MatchLabels, podLabels)
	}
	ports := map[int]bool{}
	for _, e := range np.Spec.Egress {
		for _, p := range e.Ports {
			ports[p.Port.IntValue()] = true
		}
	}
	for _, p := range []int{9000, 8123, 2181, 5432, 443, 53} {
		if !ports[p] {
			t.Errorf("NetworkPolicy egress lacks port %d", p)
		}
	}
	if got := len(np.Spec.Ingress) > 0; got != ingress {
		t.Errorf("ingress rules present = %v, want %v", got, ingress)
	}
}

var metricName = regexp.MustCompile(`tracevault_[a-z_]+`)

// checkRules: the backup alert reads a metric the daemon exports, over 1.5 intervals.
func checkRules(t *testing.T, pr *prometheusRule) {
	t.Helper()
	// What the daemon exports: every series name is a string literal in the jobs package.
	files, err := filepath.Glob("../jobs/*.go")
	if err != nil {
		t.Fatal(err)
	}
	var src []byte
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		src = append(src, b...)
	}
	alerts := map[string]string{}
	for _, g := range pr.Spec.Groups {
		for _, rule := range g.Rules {
			alerts[rule.Alert+"/"+rule.Labels["tracevault_job"]] = rule.Expr
			for _, m := range metricName.FindAllString(rule.Expr, -1) {
				if !bytes.Contains(src, []byte(`"`+m+`"`)) {
					t.Errorf("alert %s reads %s, which the jobs package does not export", rule.Alert, m)
				}
			}
		}
	}
	for job, limit := range map[string]string{"nightly": "> 129600", "hourly": "> 5400"} {
		e, ok := alerts["TracevaultBackupOverdue/"+job]
		if !ok || !strings.Contains(e, limit) || !strings.Contains(e, `exported_job="`+job+`"`) {
			t.Errorf("backup alert for %s: %q, want threshold %s", job, e, limit)
		}
	}
	for _, a := range []string{"TracevaultJobFailed/", "TracevaultReplicaInconsistent/", "TracevaultReplicaCheckFailing/", "TracevaultDrillOverdue/", "ClickHouseReplicaReadonly/", "ZooKeeperZnodeCountHigh/", "ZooKeeperDataSizeHigh/", "ZooKeeperOutstandingRequestsHigh/"} {
		if _, ok := alerts[a]; !ok {
			t.Errorf("alert %s missing", strings.TrimSuffix(a, "/"))
		}
	}
	if e := alerts["ZooKeeperDataSizeHigh/"]; !strings.HasSuffix(e, "> 1073741824") {
		t.Errorf("ZooKeeper data size alert %q: want warn_data_size 1GiB in bytes", e)
	}
}

// checkSidecar decodes the snippet NOTES.txt prints for the Langfuse chart strictly and checks
// that the container mounts the ClickHouse data volume and runs as ClickHouse's user.
func checkSidecar(t *testing.T, notes, dataMount string) {
	t.Helper()
	i := strings.Index(notes, "\n---\n")
	if i < 0 {
		t.Fatalf("NOTES.txt has no sidecar snippet:\n%s", notes)
	}
	var snippet struct {
		ClickHouse struct {
			ServiceAccount struct {
				Create bool   `json:"create"`
				Name   string `json:"name"`
			} `json:"serviceAccount"`
			PodLabels    map[string]string  `json:"podLabels"`
			ExtraVolumes []corev1.Volume    `json:"extraVolumes"`
			Sidecars     []corev1.Container `json:"sidecars"`
		} `json:"clickhouse"`
	}
	js, err := yaml.YAMLToJSON([]byte(notes[i+5:]))
	if err != nil {
		t.Fatalf("sidecar snippet: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&snippet); err != nil {
		t.Fatalf("sidecar snippet: %v\n%s", err, notes[i:])
	}
	ch := snippet.ClickHouse
	if ch.PodLabels["azure.workload.identity/use"] != "true" || ch.ServiceAccount.Name != "tv-tracevault" {
		t.Errorf("snippet does not give the ClickHouse pods the Workload Identity label and ServiceAccount: %+v", ch)
	}
	if len(ch.Sidecars) != 1 {
		t.Fatalf("%d sidecars", len(ch.Sidecars))
	}
	c := ch.Sidecars[0]
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m.MountPath
	}
	if mounts["data"] != dataMount {
		t.Errorf("sidecar mounts the data volume at %q, want %q", mounts["data"], dataMount)
	}
	for _, v := range ch.ExtraVolumes {
		if _, ok := mounts[v.Name]; !ok {
			t.Errorf("extra volume %s is not mounted", v.Name)
		}
	}
	if c.SecurityContext == nil || c.SecurityContext.RunAsUser == nil || *c.SecurityContext.RunAsUser != 1001 ||
		c.SecurityContext.ReadOnlyRootFilesystem == nil || !*c.SecurityContext.ReadOnlyRootFilesystem {
		t.Errorf("sidecar security context %+v: want ClickHouse's user 1001 and a read-only root", c.SecurityContext)
	}
	if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Error("sidecar liveness probe does not point at /healthz")
	}
	if c.ReadinessProbe != nil {
		t.Error("sidecar has a readiness probe: tracevault not ready would take the ClickHouse pod out of its Service")
	}
}

func subset(sel, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// TestChartReadmeValuesRender renders every values file deploy/README.md shows (the yaml blocks
// starting "# values-NAME.yaml") with a client ID filled in, through the same checks.
func TestChartReadmeValuesRender(t *testing.T) {
	data, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```yaml\n(# values-[a-z0-9-]+\\.yaml\n.*?)```").FindAllStringSubmatch(string(data), -1)
	if len(blocks) < 3 {
		t.Fatalf("README.md shows %d values files, want the AKS, Langfuse chart v2 and sidecar ones", len(blocks))
	}
	ch := loadChart(t)
	for _, b := range blocks {
		name := strings.TrimPrefix(strings.SplitN(b[1], "\n", 2)[0], "# ")
		t.Run(name, func(t *testing.T) {
			r, err := render(t, ch, strings.ReplaceAll(b[1], "<CLIENT_ID>", clientID))
			if err != nil {
				t.Fatalf("render: %v", err)
			}
			checkWorkloadIdentity(t, r)
			checkConfigPasses(t, r)
		})
	}
}

// TestChartNetworkPolicyDefault: by default the web port (page, API, /metrics) admits only pods in
// the ingress controller's and Prometheus's namespaces, never every pod in the cluster; an empty
// ingressFrom closes the port rather than open it.
func TestChartNetworkPolicyDefault(t *testing.T) {
	ch := loadChart(t)
	r, err := render(t, ch, wiValues)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	np := get[networkingv1.NetworkPolicy](t, r)
	if np == nil {
		t.Fatal("no NetworkPolicy by default")
	}
	if len(np.Spec.Ingress) != 1 {
		t.Fatalf("%d ingress rules, want 1: %+v", len(np.Spec.Ingress), np.Spec.Ingress)
	}
	rule := np.Spec.Ingress[0]
	if len(rule.Ports) != 1 || rule.Ports[0].Port.String() != "http" {
		t.Errorf("ingress ports %+v, want only the web port (http)", rule.Ports)
	}
	var namespaces []string
	for _, peer := range rule.From {
		if peer.IPBlock != nil || peer.PodSelector != nil || peer.NamespaceSelector == nil ||
			len(peer.NamespaceSelector.MatchLabels) != 1 || len(peer.NamespaceSelector.MatchExpressions) != 0 {
			t.Errorf("peer %+v: want one namespace named by kubernetes.io/metadata.name", peer)
			continue
		}
		namespaces = append(namespaces, peer.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"])
	}
	if got := strings.Join(namespaces, " "); got != "ingress-nginx app-routing-system monitoring" {
		t.Errorf("the web port admits namespaces %q, want the ingress controllers' and Prometheus's", got)
	}

	r, err = render(t, ch, wiValues, "networkPolicy: {ingressFrom: []}\n")
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	if np := get[networkingv1.NetworkPolicy](t, r); np == nil || len(np.Spec.Ingress) != 0 || !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) {
		t.Errorf("ingressFrom: [] must admit nobody (policy type Ingress, no rule): %+v", np)
	}
}

// TestChartSecretKeysCoverConfig: every Secret field of the configuration is in secretValueKeys,
// so a new secret-bearing key cannot reach the chart without the schema's reference pattern.
func TestChartSecretKeysCoverConfig(t *testing.T) {
	var walk func(prefix string, typ reflect.Type)
	found := 0
	secretType := reflect.TypeFor[config.Secret]()
	walk = func(prefix string, typ reflect.Type) {
		for f := range typ.Fields() {
			name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
			switch {
			case f.Anonymous && name == "": // embedded: its keys sit in the same table
				walk(prefix, f.Type)
			case name == "" || name == "-":
			case f.Type == secretType:
				found++
				if !slices.Contains(secretValueKeys, prefix+name) {
					t.Errorf("%s%s is a Secret, yet values.schema.json does not require a reference for it (add it to secretValueKeys and the schema)", prefix, name)
				}
			case f.Type.Kind() == reflect.Struct:
				walk(prefix+name+".", f.Type)
			}
		}
	}
	walk("config.", reflect.TypeFor[config.Config]())
	if found < 10 {
		t.Errorf("found only %d Secret fields in config.Config: the walk misses some", found)
	}
}
