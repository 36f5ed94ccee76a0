package devstack

import (
	"testing"

	toml "github.com/pelletier/go-toml/v2"
)

// TestStackTOMLParses: the tables the tests build their configurations from are valid TOML
// with the stack's values, and a caller's key appended to each lands in that table.
func TestStackTOMLParses(t *testing.T) {
	e := &Env{CHNative: []string{"127.0.0.1:9001", "127.0.0.1:9002"}, CHHTTP: []string{"127.0.0.1:8123", "127.0.0.1:8124"},
		CHCluster: "langfuse", ZK: "127.0.0.1:2181"}
	doc := e.ClickHouseTOML(`db"1`) + "include_tables = [\"db.t\"]\n" + e.ZooKeeperTOML() + "session_timeout = \"4s\"\n"
	var got struct {
		ClickHouse struct {
			Addresses     []string `toml:"addresses"`
			HTTPAddresses []string `toml:"http_addresses"`
			Cluster       string   `toml:"cluster"`
			Databases     []string `toml:"databases"`
			IncludeTables []string `toml:"include_tables"`
		} `toml:"clickhouse"`
		ZooKeeper struct {
			Servers        []string `toml:"servers"`
			SessionTimeout string   `toml:"session_timeout"`
		} `toml:"zookeeper"`
	}
	if err := toml.Unmarshal([]byte(doc), &got); err != nil {
		t.Fatalf("decode:\n%s\n%v", doc, err)
	}
	ch, zk := got.ClickHouse, got.ZooKeeper
	for _, c := range []struct{ what, got, want string }{
		{"addresses", TOMLList(ch.Addresses), TOMLList(e.CHNative)},
		{"http_addresses", TOMLList(ch.HTTPAddresses), TOMLList(e.CHHTTP)},
		{"cluster", ch.Cluster, "langfuse"},
		{"databases", TOMLList(ch.Databases), TOMLList([]string{`db"1`})},
		{"include_tables", TOMLList(ch.IncludeTables), TOMLList([]string{"db.t"})},
		{"servers", TOMLList(zk.Servers), TOMLList([]string{e.ZK})},
		{"session_timeout", zk.SessionTimeout, "4s"},
	} {
		if c.got != c.want {
			t.Errorf("%s: got %s, want %s", c.what, c.got, c.want)
		}
	}
}
