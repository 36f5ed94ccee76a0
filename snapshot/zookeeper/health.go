package zookeeper

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// Thresholds turn numbers into warnings. ZooKeeper holds its whole tree in memory, so a znode
// count or data size that keeps growing is the early sign of the out-of-memory failure that
// takes all replication down.
type Thresholds struct {
	ZnodeCount          int64 // 0 disables
	DataSize            int64 // bytes; 0 disables
	OutstandingRequests int64 // 0 disables
}

// ServerHealth is one ensemble member as the four-letter-word commands describe it.
type ServerHealth struct {
	Server              string   `json:"server"`
	OK                  bool     `json:"ok"`
	Error               string   `json:"error,omitempty"`
	Mode                string   `json:"mode,omitempty"` // leader, follower, observer, standalone
	Version             string   `json:"version,omitempty"`
	ZnodeCount          int64    `json:"znode_count"`
	ApproxDataSize      int64    `json:"approximate_data_size"`
	OutstandingRequests int64    `json:"outstanding_requests"`
	AvgLatencyMs        float64  `json:"avg_latency_ms"`
	MaxLatencyMs        float64  `json:"max_latency_ms"`
	WatchCount          int64    `json:"watch_count"`
	EphemeralsCount     int64    `json:"ephemerals_count"`
	OpenFDs             int64    `json:"open_file_descriptors"`
	MaxFDs              int64    `json:"max_file_descriptors"`
	LastZxid            int64    `json:"last_zxid"`
	Warnings            []string `json:"warnings,omitempty"`
}

// Health asks every server with ruok and mntr (srvr for the zxid). Each server gets its own
// timeout, so one dead member does not hide the others.
func Health(ctx context.Context, servers []string, th Thresholds, timeout time.Duration) []ServerHealth {
	out := make([]ServerHealth, len(servers))
	done := make(chan struct{})
	for i, s := range servers {
		go func() {
			defer func() { done <- struct{}{} }()
			out[i] = serverHealth(ctx, s, th, timeout)
		}()
	}
	for range servers {
		<-done
	}
	return out
}

func serverHealth(ctx context.Context, server string, th Thresholds, timeout time.Duration) ServerHealth {
	h := ServerHealth{Server: server}
	ruok, err := fourLetter(ctx, server, "ruok", timeout)
	if err != nil {
		h.Error = fmt.Sprintf("zookeeper %s does not answer: %v", server, err)
		return h
	}
	if strings.TrimSpace(ruok) != "imok" {
		h.Error = fmt.Sprintf("zookeeper %s: ruok answered %q; if it says 'not in the whitelist', set 4lw.commands.whitelist=ruok,srvr,mntr in zoo.cfg", server, strings.TrimSpace(ruok))
		return h
	}
	mntr, err := fourLetter(ctx, server, "mntr", timeout)
	if err != nil {
		h.Error = fmt.Sprintf("zookeeper %s: mntr: %v", server, err)
		return h
	}
	kv := parseMntr(mntr)
	if len(kv) == 0 {
		h.Error = fmt.Sprintf("zookeeper %s: mntr gave no metrics: %q", server, strings.TrimSpace(mntr))
		if strings.Contains(mntr, "whitelist") {
			h.Error += "; allow it with 4lw.commands.whitelist=ruok,srvr,mntr in zoo.cfg"
		}
		return h
	}
	h.OK = true
	h.Mode = kv["zk_server_state"]
	h.Version, _, _ = strings.Cut(kv["zk_version"], ",")
	h.Version, _, _ = strings.Cut(h.Version, "-")
	num := func(k string) int64 { n, _ := strconv.ParseFloat(kv[k], 64); return int64(n) }
	flt := func(k string) float64 { n, _ := strconv.ParseFloat(kv[k], 64); return n }
	h.ZnodeCount, h.ApproxDataSize = num("zk_znode_count"), num("zk_approximate_data_size")
	h.OutstandingRequests, h.WatchCount = num("zk_outstanding_requests"), num("zk_watch_count")
	h.EphemeralsCount, h.OpenFDs, h.MaxFDs = num("zk_ephemerals_count"), num("zk_open_file_descriptor_count"), num("zk_max_file_descriptor_count")
	h.AvgLatencyMs, h.MaxLatencyMs = flt("zk_avg_latency"), flt("zk_max_latency")
	if srvr, err := fourLetter(ctx, server, "srvr", timeout); err == nil {
		h.LastZxid = parseSrvrZxid(srvr)
	}
	h.Warnings = warnings(h, th)
	return h
}

func warnings(h ServerHealth, th Thresholds) []string {
	var w []string
	if th.ZnodeCount > 0 && h.ZnodeCount > th.ZnodeCount {
		w = append(w, fmt.Sprintf("znode count %d is over the warning threshold %d", h.ZnodeCount, th.ZnodeCount))
	}
	if th.DataSize > 0 && h.ApproxDataSize > th.DataSize {
		w = append(w, fmt.Sprintf("approximate data size %d bytes is over the warning threshold %d; ZooKeeper keeps it all in heap", h.ApproxDataSize, th.DataSize))
	}
	if th.OutstandingRequests > 0 && h.OutstandingRequests > th.OutstandingRequests {
		w = append(w, fmt.Sprintf("%d outstanding requests, over the warning threshold %d", h.OutstandingRequests, th.OutstandingRequests))
	}
	if h.MaxFDs > 0 && h.OpenFDs*10 > h.MaxFDs*9 {
		w = append(w, fmt.Sprintf("%d of %d file descriptors open", h.OpenFDs, h.MaxFDs))
	}
	return w
}

// fourLetter sends one four-letter-word command; the server answers and closes the connection.
func fourLetter(ctx context.Context, server, cmd string, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", server)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if _, err := io.WriteString(conn, cmd); err != nil {
		return "", fmt.Errorf("send %s: %w", cmd, err)
	}
	b, err := io.ReadAll(io.LimitReader(conn, 1<<20))
	if err != nil {
		return "", fmt.Errorf("read %s answer: %w", cmd, err)
	}
	return string(b), nil
}

func parseMntr(s string) map[string]string {
	kv := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "\t"); ok && strings.HasPrefix(k, "zk_") {
			kv[k] = strings.TrimSpace(v)
		}
	}
	return kv
}

func parseSrvrZxid(s string) int64 {
	for _, line := range strings.Split(s, "\n") {
		if v, ok := strings.CutPrefix(line, "Zxid: "); ok {
			n, _ := strconv.ParseInt(strings.TrimPrefix(strings.TrimSpace(v), "0x"), 16, 64)
			return n
		}
	}
	return 0
}
