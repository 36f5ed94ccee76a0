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

// The servers that speak ZooKeeper's protocol to ClickHouse: Apache ZooKeeper, and ClickHouse
// Keeper (a separate program, or inside clickhouse-server), which the official ClickHouse
// operator's KeeperCluster runs. Their four-letter words differ in the ways keeperAnswers names.
const (
	KindZooKeeper = "zookeeper"
	KindKeeper    = "clickhouse-keeper"
)

// ServerHealth is one ensemble member as the four-letter-word commands describe it.
type ServerHealth struct {
	Server              string   `json:"server"`
	Kind                string   `json:"kind,omitempty"` // KindZooKeeper or KindKeeper
	OK                  bool     `json:"ok"`
	Error               string   `json:"error,omitempty"`
	Mode                string   `json:"mode,omitempty"` // leader, follower, observer, standalone
	Version             string   `json:"version,omitempty"`
	ReadOnly            bool     `json:"read_only,omitempty"` // isro: a ZooKeeper serving reads only
	ZnodeCount          int64    `json:"znode_count"`
	ApproxDataSize      int64    `json:"approximate_data_size"`
	OutstandingRequests int64    `json:"outstanding_requests"`
	AvgLatencyMs        float64  `json:"avg_latency_ms"`
	MaxLatencyMs        float64  `json:"max_latency_ms"`
	WatchCount          int64    `json:"watch_count"`
	EphemeralsCount     int64    `json:"ephemerals_count"`
	OpenFDs             int64    `json:"open_file_descriptors"`
	MaxFDs              int64    `json:"max_file_descriptors"` // 0: the server does not know
	LastZxid            int64    `json:"last_zxid"`
	Warnings            []string `json:"warnings,omitempty"`
}

// Health asks every server with ruok, srvr, mntr and isro. Each server gets its own timeout, so
// one dead member does not hide the others.
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

// What ClickHouse Keeper answers differently from ZooKeeper (src/Coordination/FourLetterCommand.cpp,
// src/Server/KeeperTCPHandler.cpp):
//   - a word outside its <keeper_server><four_letter_word_allow_list> gets no answer at all (the
//     connection just closes), where ZooKeeper says "… is not in the whitelist";
//   - without a leader (quorum lost, or starting) every word but ruok and isro answers
//     keeperNotServing, where ZooKeeper answers mntr and srvr and reports its state;
//   - srvr starts "ClickHouse Keeper version: v24.8.4.13-lts-<git hash>"; its Zxid is hex with
//     0x in current releases, a plain decimal in early ones (21.x);
//   - mntr's zk_version is "v24.8.4.13-lts-<git hash>"; zk_max_file_descriptor_count is
//     18446744073709551615 (-1 printed unsigned) when the limit is unknown; it adds
//     zk_key_arena_size and zk_latest_snapshot_size and lacks ZooKeeper 3.6's extra metrics;
//   - isro answers "ro" on an observer (a learner that forwards writes), not, as ZooKeeper does,
//     on a server that lost its quorum and serves reads only.
const (
	keeperNotServing = "This instance is not currently serving requests"
	keeperSrvrPrefix = "ClickHouse Keeper version:"
	allowListHint    = "allow ruok, srvr, mntr and isro: ZooKeeper's 4lw.commands.whitelist in zoo.cfg, ClickHouse Keeper's <keeper_server><four_letter_word_allow_list> (its default has them)"
)

func serverHealth(ctx context.Context, server string, th Thresholds, timeout time.Duration) ServerHealth {
	h := ServerHealth{Server: server}
	ruok, err := fourLetter(ctx, server, "ruok", timeout)
	if err != nil {
		h.Error = fmt.Sprintf("zookeeper %s does not answer: %v", server, err)
		return h
	}
	if answer := strings.TrimSpace(ruok); answer != "imok" {
		h.Error = fmt.Sprintf("zookeeper %s: ruok answered %s; %s", server, describe(answer), allowListHint)
		return h
	}
	srvr, srvrErr := fourLetter(ctx, server, "srvr", timeout)
	if srvrErr == nil {
		h.Kind, h.LastZxid, h.Mode = parseSrvr(srvr)
	}
	mntr, err := fourLetter(ctx, server, "mntr", timeout)
	if err != nil {
		h.Error = fmt.Sprintf("zookeeper %s: mntr: %v", server, err)
		return h
	}
	if strings.HasPrefix(strings.TrimSpace(mntr), keeperNotServing) {
		h.Kind = KindKeeper
		h.Error = fmt.Sprintf("ClickHouse Keeper %s is not serving requests: it has no leader (quorum lost, or still starting); ClickHouse's replicated tables are read-only meanwhile", server)
		return h
	}
	kv := parseMntr(mntr)
	if len(kv) == 0 {
		h.Error = fmt.Sprintf("zookeeper %s: mntr gave no metrics: %s; %s", server, describe(strings.TrimSpace(mntr)), allowListHint)
		return h
	}
	h.OK = true
	if m := kv["zk_server_state"]; m != "" {
		h.Mode = m
	}
	h.Version = parseVersion(kv["zk_version"])
	if h.Kind == "" {
		h.Kind = KindZooKeeper
		if strings.HasPrefix(kv["zk_version"], "v") {
			h.Kind = KindKeeper
		}
	}
	num := func(k string) int64 { return parseCount(kv[k]) }
	flt := func(k string) float64 { n, _ := strconv.ParseFloat(kv[k], 64); return n }
	h.ZnodeCount, h.ApproxDataSize = num("zk_znode_count"), num("zk_approximate_data_size")
	h.OutstandingRequests, h.WatchCount = num("zk_outstanding_requests"), num("zk_watch_count")
	h.EphemeralsCount, h.OpenFDs, h.MaxFDs = num("zk_ephemerals_count"), num("zk_open_file_descriptor_count"), num("zk_max_file_descriptor_count")
	h.AvgLatencyMs, h.MaxLatencyMs = flt("zk_avg_latency"), flt("zk_max_latency")
	if isro, err := fourLetter(ctx, server, "isro", timeout); err == nil {
		// Keeper's "ro" is an observer, which takes writes and forwards them.
		h.ReadOnly = strings.TrimSpace(isro) == "ro" && h.Kind == KindZooKeeper
	}
	h.Warnings = warnings(h, th)
	return h
}

func describe(answer string) string {
	if answer == "" {
		return "nothing (ClickHouse Keeper's silence for a word it does not allow)"
	}
	return strconv.Quote(answer)
}

func warnings(h ServerHealth, th Thresholds) []string {
	var w []string
	if h.ReadOnly {
		w = append(w, "read-only mode: the server lost its quorum and serves reads only; ClickHouse inserts and job claims fail")
	}
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

// parseVersion keeps the release of zk_version: "3.8.4" of ZooKeeper's
// "3.8.4-9316c2a…, built on …", "24.8.4.13" of Keeper's "v24.8.4.13-lts-<git hash>".
func parseVersion(v string) string {
	v, _, _ = strings.Cut(v, ",")
	v, _, _ = strings.Cut(v, "-")
	return strings.TrimPrefix(strings.TrimSpace(v), "v")
}

// parseCount reads a counter of mntr; one past int64 (Keeper prints an unknown limit as -1
// cast to unsigned) or unreadable counts as 0, unknown.
func parseCount(v string) int64 {
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		return n
	}
	if f, err := strconv.ParseFloat(v, 64); err == nil && f >= 0 && f < 1<<63 {
		return int64(f) // ZooKeeper prints some counters as decimals
	}
	return 0
}

// parseSrvr reads which server answered (empty when srvr says neither), its zxid and its mode
// from srvr. ZooKeeper prints the zxid in hex with 0x; early ClickHouse Keeper releases (21.x) in decimal.
func parseSrvr(s string) (kind string, zxid int64, mode string) {
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, keeperSrvrPrefix), strings.HasPrefix(line, keeperNotServing):
			kind = KindKeeper
		case strings.HasPrefix(line, "Zookeeper version:"):
			kind = KindZooKeeper
		case strings.HasPrefix(line, "Zxid:"):
			v := strings.TrimSpace(strings.TrimPrefix(line, "Zxid:"))
			if hex, ok := strings.CutPrefix(v, "0x"); ok {
				zxid, _ = strconv.ParseInt(hex, 16, 64)
			} else {
				zxid, _ = strconv.ParseInt(v, 10, 64)
			}
		case strings.HasPrefix(line, "Mode:"):
			mode = strings.TrimSpace(strings.TrimPrefix(line, "Mode:"))
		}
	}
	return kind, zxid, mode
}
