package clickhouse

// The cluster view is the one place that knows the replicas of a ClickHouse cluster: what each
// server's system.replicas says, and who is registered in ZooKeeper under each table's path.
// Backups pick source replicas from it, `check` judges it, `restore-replica` repairs from it,
// and snapshots record its group map so a lost replica can rejoin the group it belonged to.

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"
)

// Replica is one configured server as seen now.
type Replica struct {
	Addr   string            `json:"addr"`
	Up     bool              `json:"up"`
	Error  string            `json:"error,omitempty"`
	Macros map[string]string `json:"macros,omitempty"`
	// Tables are the server's replicated tables, from its system.replicas.
	Tables []ReplicaTable `json:"tables,omitempty"`
}

// Name is the replica's {replica} macro, or its address when unknown.
func (r Replica) Name() string {
	if n := r.Macros["replica"]; n != "" {
		return n
	}
	return r.Addr
}

// ReplicaTable is one row of system.replicas.
type ReplicaTable struct {
	Database         string `json:"database"`
	Table            string `json:"table"`
	Engine           string `json:"engine"`
	UUID             string `json:"uuid,omitempty"`
	ZooKeeperPath    string `json:"zookeeper_path"`
	ReplicaName      string `json:"replica_name"`
	IsReadonly       bool   `json:"is_readonly"`
	IsSessionExpired bool   `json:"is_session_expired"`
	QueueSize        uint32 `json:"queue_size"`
	AbsoluteDelay    uint64 `json:"absolute_delay"`
	ActiveReplicas   uint32 `json:"active_replicas"` // UInt8 on 18.16, UInt32 on 26.x: read as UInt32
	TotalReplicas    uint32 `json:"total_replicas"`
}

// FullName is "db.table".
func (t ReplicaTable) FullName() string { return t.Database + "." + t.Table }

// Healthy is a replica a backup may read from.
func (t ReplicaTable) Healthy() bool { return !t.IsReadonly && !t.IsSessionExpired }

// Group is one replication group: a ZooKeeper table path and everyone in it.
type Group struct {
	ZooKeeperPath string         `json:"zookeeper_path"`
	Registered    []Registration `json:"registered"` // from ZooKeeper <path>/replicas
	// Members are the server tables that point at this path (from system.replicas).
	Members []Member `json:"members"`
}

// Registration is a replica registered under a group's path in ZooKeeper.
type Registration struct {
	Name    string `json:"name"`
	Host    string `json:"host,omitempty"`
	Port    int    `json:"port,omitempty"`     // interserver port
	TCPPort int    `json:"tcp_port,omitempty"` // native port
	Active  bool   `json:"active"`             // is_active exists: the replica's session is live
	// Columns is the column list the replica registered; replicas that disagree cannot merge.
	Columns string `json:"columns,omitempty"`
}

// Member is a server table in a group.
type Member struct {
	Addr        string `json:"addr"`
	Table       string `json:"table"` // db.table on that server
	ReplicaName string `json:"replica_name"`
	UUID        string `json:"uuid,omitempty"`
}

// View is the cluster at one moment.
type View struct {
	Taken    time.Time `json:"taken"`
	Replicas []Replica `json:"replicas"`
	Groups   []Group   `json:"groups"`
	// ZooKeeperError is set when the registrations could not be read; Groups then only hold
	// what the servers said.
	ZooKeeperError string `json:"zookeeper_error,omitempty"`
}

// Observe reads every server and ZooKeeper. A server that is down is recorded as such rather
// than failing the whole view: seeing a partial cluster is the point of `check`.
func Observe(ctx context.Context, servers []*Server, addrs []string, conn *zk.Conn) *View {
	v := &View{Taken: time.Now().UTC()}
	byAddr := map[string]*Server{}
	for _, s := range servers {
		byAddr[s.Addr] = s
	}
	// Replicas, then groups, are read together: every backup pays these round trips.
	v.Replicas = make([]Replica, len(addrs))
	var wg sync.WaitGroup
	for i, addr := range addrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := Replica{Addr: addr}
			s, ok := byAddr[addr]
			if !ok {
				r.Error = "not connected"
			} else if err := readReplica(ctx, s, &r); err != nil {
				r.Error = err.Error()
			} else {
				r.Up = true
			}
			v.Replicas[i] = r
		}()
	}
	wg.Wait()
	v.Groups = groupsOf(v.Replicas)
	if conn == nil {
		v.ZooKeeperError = "zookeeper not configured"
		return v
	}
	errs := make([]error, len(v.Groups))
	for i := range v.Groups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v.Groups[i].Registered, errs[i] = registrations(conn, v.Groups[i].ZooKeeperPath)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			// As when read one by one: the first failure is the view's, and no group after it
			// claims registrations.
			v.ZooKeeperError = err.Error()
			for j := i; j < len(v.Groups); j++ {
				v.Groups[j].Registered = nil
			}
			break
		}
	}
	return v
}

// readMacros is a server's <macros>, as it runs with them.
func readMacros(ctx context.Context, s *Server) (map[string]string, error) {
	rows, err := s.Conn.Query(ctx, "SELECT macro, substitution FROM system.macros")
	if err != nil {
		return nil, fmt.Errorf("read system.macros on %s: %w", s.Addr, err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return nil, fmt.Errorf("read system.macros on %s: %w", s.Addr, err)
		}
		out[k] = v
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read system.macros on %s: %w", s.Addr, err)
	}
	return out, nil
}

func readReplica(ctx context.Context, s *Server, r *Replica) error {
	var err error
	if r.Macros, err = readMacros(ctx, s); err != nil {
		return err
	}
	uuid := "''"
	if s.Caps.TableUUIDs {
		uuid = "toString(t.uuid)"
	}
	q := `SELECT r.database, r.table, r.engine, ` + uuid + `, r.zookeeper_path, r.replica_name, r.is_readonly,
		r.is_session_expired, r.queue_size, r.absolute_delay, toUInt32(r.active_replicas), toUInt32(r.total_replicas)
		FROM system.replicas AS r ANY LEFT JOIN system.tables AS t ON r.database = t.database AND r.table = t.name
		ORDER BY r.database, r.table`
	rows, err := s.Conn.Query(ctx, q)
	if err != nil {
		return fmt.Errorf("read system.replicas on %s: %w", s.Addr, err)
	}
	defer rows.Close()
	for rows.Next() {
		var t ReplicaTable
		var readonly, expired uint8
		if err := rows.Scan(&t.Database, &t.Table, &t.Engine, &t.UUID, &t.ZooKeeperPath, &t.ReplicaName, &readonly, &expired,
			&t.QueueSize, &t.AbsoluteDelay, &t.ActiveReplicas, &t.TotalReplicas); err != nil {
			return fmt.Errorf("read system.replicas on %s: %w", s.Addr, err)
		}
		t.IsReadonly, t.IsSessionExpired = readonly != 0, expired != 0
		r.Tables = append(r.Tables, t)
	}
	return rows.Err()
}

func groupsOf(replicas []Replica) []Group {
	byPath := map[string]*Group{}
	for _, r := range replicas {
		for _, t := range r.Tables {
			g := byPath[t.ZooKeeperPath]
			if g == nil {
				g = &Group{ZooKeeperPath: t.ZooKeeperPath}
				byPath[t.ZooKeeperPath] = g
			}
			g.Members = append(g.Members, Member{Addr: r.Addr, Table: t.FullName(), ReplicaName: t.ReplicaName, UUID: t.UUID})
		}
	}
	out := make([]Group, 0, len(byPath))
	for _, g := range byPath {
		out = append(out, *g)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ZooKeeperPath < out[j].ZooKeeperPath })
	return out
}

// registrations reads <path>/replicas/*: each replica's host record and whether it is active.
func registrations(conn *zk.Conn, zkPath string) ([]Registration, error) {
	names, _, err := conn.Children(zkPath + "/replicas")
	if errors.Is(err, zk.ErrNoNode) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list replicas under %s: %w", zkPath, err)
	}
	sort.Strings(names)
	out := make([]Registration, 0, len(names))
	for _, name := range names {
		base := zkPath + "/replicas/" + name
		reg := Registration{Name: name}
		if data, _, err := conn.Get(base + "/host"); err == nil {
			reg.Host, reg.Port, reg.TCPPort = parseHost(string(data))
		}
		if ok, _, err := conn.Exists(base + "/is_active"); err == nil {
			reg.Active = ok
		}
		if data, _, err := conn.Get(base + "/columns"); err == nil {
			reg.Columns = string(data)
		}
		out = append(out, reg)
	}
	return out, nil
}

// parseHost reads the "key: value" lines ClickHouse writes to replicas/<name>/host.
func parseHost(s string) (host string, port, tcpPort int) {
	for _, line := range strings.Split(s, "\n") {
		k, v, ok := strings.Cut(line, ": ")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "host":
			host = strings.TrimSpace(v)
		case "port":
			port, _ = strconv.Atoi(strings.TrimSpace(v))
		case "tcp_port":
			tcpPort, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	return host, port, tcpPort
}
