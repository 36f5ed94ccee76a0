package deploy

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	toml "github.com/pelletier/go-toml/v2"
	appsv1 "k8s.io/api/apps/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

// The official ClickHouse operator's names (clickhouse.com/v1alpha1, api/v1alpha1 and
// internal/controllerutil of ClickHouse/clickhouse-operator): a KeeperCluster N runs one
// StatefulSet N-keeper-<id> per replica behind the headless Service N-keeper-headless, a
// ClickHouseCluster N one StatefulSet N-clickhouse-<shard>-<replica> per replica behind
// N-clickhouse-headless; a pod is <statefulset>-0.<service>. Their pods carry these labels.
func operatorKeeperHost(cluster string, id int) string {
	return fmt.Sprintf("%s-keeper-%d-0.%s-keeper-headless:2181", cluster, id, cluster)
}

func operatorClickHouseHost(cluster string, shard, replica, port int) string {
	return fmt.Sprintf("%s-clickhouse-%d-%d-0.%s-clickhouse-headless:%d", cluster, shard, replica, cluster, port)
}

func operatorPodLabels(cluster, role string) map[string]string {
	return map[string]string{"app": cluster + "-" + strings.TrimPrefix(role, "clickhouse-"), "app.kubernetes.io/name": role,
		"app.kubernetes.io/instance": cluster + "-" + strings.TrimPrefix(role, "clickhouse-"), "clickhouse.com/role": role}
}

// TestChartLangfuseV2KeeperValuesRender renders deploy/README.md's values file for Langfuse's
// chart v2 (release langfuse: ClickHouseCluster and KeeperCluster "langfuse") and checks that it
// points at what the operator runs: every replica and Keeper member by its operator name, the
// Keeper identity and ClickHouse password from the Secrets they live in, egress to the pods by
// the operator's labels, and alerts on the metrics Keeper exports.
func TestChartLangfuseV2KeeperValuesRender(t *testing.T) {
	data, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```yaml\n(# values-langfuse-v2\\.yaml\n.*?)```").FindStringSubmatch(string(data))
	if m == nil {
		t.Fatal("README.md has no values-langfuse-v2.yaml block")
	}
	r, err := render(t, loadChart(t), strings.ReplaceAll(m[1], "<CLIENT_ID>", clientID))
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	checkConfigPasses(t, r)

	var cfg struct {
		ClickHouse struct {
			Addresses     []string `toml:"addresses"`
			HTTPAddresses []string `toml:"http_addresses"`
			Cluster       string   `toml:"cluster"`
		} `toml:"clickhouse"`
		ZooKeeper struct {
			Servers  []string `toml:"servers"`
			Identity string   `toml:"identity"`
		} `toml:"zookeeper"`
	}
	if err := toml.Unmarshal([]byte(configTOML(t, r)), &cfg); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if got, want := cfg.ZooKeeper.Servers[i], operatorKeeperHost("langfuse", i); got != want {
			t.Errorf("zookeeper.servers[%d] = %s, want the operator's %s", i, got, want)
		}
		if got, want := cfg.ClickHouse.Addresses[i], operatorClickHouseHost("langfuse", 0, i, 9000); got != want {
			t.Errorf("clickhouse.addresses[%d] = %s, want the operator's %s", i, got, want)
		}
		if got, want := cfg.ClickHouse.HTTPAddresses[i], operatorClickHouseHost("langfuse", 0, i, 8123); got != want {
			t.Errorf("clickhouse.http_addresses[%d] = %s, want the operator's %s", i, got, want)
		}
	}
	if len(cfg.ZooKeeper.Servers) != 3 || cfg.ClickHouse.Cluster != "default" || cfg.ZooKeeper.Identity != "env:KEEPER_IDENTITY" {
		t.Errorf("config %+v: want 3 Keeper members, the operator's cluster default, the identity from KEEPER_IDENTITY", cfg)
	}

	d := get[appsv1.Deployment](t, r)
	from := map[string]string{}
	for _, e := range d.Spec.Template.Spec.Containers[0].Env {
		if _, dup := from[e.Name]; dup {
			t.Errorf("%s is set twice", e.Name)
		}
		from[e.Name] = ""
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			from[e.Name] = e.ValueFrom.SecretKeyRef.Name + "/" + e.ValueFrom.SecretKeyRef.Key
		}
	}
	for name, want := range map[string]string{"KEEPER_IDENTITY": "langfuse-clickhouse/keeper-identity", "CLICKHOUSE_PASSWORD": "langfuse-clickhouse-auth/password", "TRACEVAULT_PG_DSN": "tracevault/postgres-dsn"} {
		if from[name] != want {
			t.Errorf("%s from %q, want Secret key %s", name, from[name], want)
		}
	}

	np := get[networkingv1.NetworkPolicy](t, r)
	for role, port := range map[string]int{"clickhouse-keeper": 2181, "clickhouse-server": 9000} {
		reached := false
		for _, e := range np.Spec.Egress {
			for _, to := range e.To {
				for _, p := range e.Ports {
					if to.PodSelector != nil && subset(to.PodSelector.MatchLabels, operatorPodLabels("langfuse", role)) && p.Port.IntValue() == port {
						reached = true
					}
				}
			}
		}
		if !reached {
			t.Errorf("no egress rule reaches the operator's %s pods on %d: %+v", role, port, np.Spec.Egress)
		}
	}

	pr := get[prometheusRule](t, r)
	exprs := map[string]string{}
	for _, g := range pr.Spec.Groups {
		for _, rule := range g.Rules {
			exprs[rule.Alert] = rule.Expr
		}
	}
	for alert, metric := range map[string]string{"ZooKeeperZnodeCountHigh": "ClickHouseAsyncMetrics_KeeperZnodeCount",
		"ZooKeeperDataSizeHigh": "ClickHouseAsyncMetrics_KeeperApproximateDataSize", "ZooKeeperOutstandingRequestsHigh": "ClickHouseMetrics_KeeperOutstandingRequests"} {
		if !strings.Contains(exprs[alert], metric+")") {
			t.Errorf("%s: %q, want Keeper's %s", alert, exprs[alert], metric)
		}
	}
}
