package deploy

import (
	"strings"
	"testing"

	toml "github.com/pelletier/go-toml/v2"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

// appendOnlyValues is an append-only daemon whose prune runs as the chart's prune CronJob.
const appendOnlyValues = `config:
  storage: {append_only: true}
  jobs:
    - {name: nightly, schedule: "0 3 * * *", action: backup, timeout: "2h"}
pruneJob:
  enabled: true
  schedule: "15 5 * * *"
  workloadIdentityClientId: "99999999-1111-2222-3333-444444444444"
`

// TestChartPruneJobIsASeparateIdentity (issue 29): with pruneJob the daemon keeps its
// append-only configuration and identity; prune runs as a CronJob with its own ServiceAccount
// and Workload Identity client id, from a configuration without append_only and without jobs,
// which the binary accepts. A prune job left in the daemon's jobs, or pruneJob without an
// append-only daemon, is refused with the fix.
func TestChartPruneJobIsASeparateIdentity(t *testing.T) {
	ch := loadChart(t)
	r, err := render(t, ch, wiValues, appendOnlyValues)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	var cj *batchv1.CronJob
	var sa, daemonSA *corev1.ServiceAccount
	var cm, daemonCM *corev1.ConfigMap
	for key, o := range r.objects {
		prune := strings.HasSuffix(key, "-prune")
		switch v := o.(type) {
		case *batchv1.CronJob:
			cj = v
		case *corev1.ServiceAccount:
			if prune {
				sa = v
			} else {
				daemonSA = v
			}
		case *corev1.ConfigMap:
			if prune {
				cm = v
			} else {
				daemonCM = v
			}
		}
	}
	d := get[appsv1.Deployment](t, r)
	if cj == nil || sa == nil || cm == nil || daemonSA == nil || daemonCM == nil || d == nil {
		t.Fatalf("rendered %v: want the daemon's and the prune's ConfigMap and ServiceAccount, and the CronJob", kinds(r))
	}
	ps := cj.Spec.JobTemplate.Spec.Template.Spec
	if ps.ServiceAccountName != sa.Name || d.Spec.Template.Spec.ServiceAccountName != daemonSA.Name || sa.Name == daemonSA.Name {
		t.Errorf("service accounts: prune %q, daemon %q; want their own", ps.ServiceAccountName, d.Spec.Template.Spec.ServiceAccountName)
	}
	if got := sa.Annotations["azure.workload.identity/client-id"]; got != "99999999-1111-2222-3333-444444444444" || got == daemonSA.Annotations["azure.workload.identity/client-id"] {
		t.Errorf("prune's client id %q: want its own, not the daemon's", got)
	}
	if a := strings.Join(ps.Containers[0].Args, " "); a != "prune --log-format json" || cj.Spec.Schedule != "15 5 * * *" {
		t.Errorf("CronJob args %q schedule %q", a, cj.Spec.Schedule)
	}
	var cmName string
	for _, v := range ps.Volumes {
		if v.ConfigMap != nil {
			cmName = v.ConfigMap.Name
		}
	}
	if cmName != cm.Name {
		t.Errorf("the prune pod mounts ConfigMap %q, want %s", cmName, cm.Name)
	}
	checkPodSecurity(t, "CronJob/"+cj.Name, &ps)
	type cfg struct {
		Storage struct {
			AppendOnly bool `toml:"append_only"`
		} `toml:"storage"`
		Jobs []map[string]any `toml:"jobs"`
	}
	for _, c := range []struct {
		name       string
		toml       string
		appendOnly bool
		jobs       int
	}{{"daemon", daemonCM.Data["tracevault.toml"], true, 1}, {"prune", cm.Data["tracevault.toml"], false, 0}} {
		var got cfg
		if err := toml.Unmarshal([]byte(c.toml), &got); err != nil {
			t.Fatalf("%s config: %v\n%s", c.name, err, c.toml)
		}
		if got.Storage.AppendOnly != c.appendOnly || len(got.Jobs) != c.jobs {
			t.Errorf("%s config: append_only %t, %d jobs; want %t, %d", c.name, got.Storage.AppendOnly, len(got.Jobs), c.appendOnly, c.jobs)
		}
		env := map[string]string{"TRACEVAULT_PG_DSN": "postgres://u:p@db:5432/langfuse", "CLICKHOUSE_PASSWORD": "x"}
		if out, err := configCheck(t, c.toml, env); err != nil || !strings.Contains(out, "valid") {
			t.Errorf("config check of the %s config: %v\n%s\n%s", c.name, err, out, c.toml)
		}
	}

	for _, bad := range []struct{ values, want string }{
		{"pruneJob: {enabled: true, workloadIdentityClientId: x}\n", "append_only=true"},
		{appendOnlyValues + "  storage: {}\nconfig: {jobs: [{name: p, schedule: '@daily', action: prune, timeout: '1h'}]}\n", "prune job"},
	} {
		if _, err := render(t, ch, wiValues, bad.values); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("values %q: %v; want a refusal naming %q", bad.values, err, bad.want)
		}
	}
}
