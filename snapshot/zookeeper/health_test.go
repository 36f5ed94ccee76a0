package zookeeper

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// recordedServer answers four-letter words from testdata/fourletter files, as a server of the
// given answers would; a word without a file gets what ClickHouse Keeper gives a word outside its
// allow list: the connection closes with no answer.
func recordedServer(t *testing.T, answers map[string]string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	body := map[string][]byte{}
	for word, file := range answers {
		b, err := os.ReadFile(filepath.Join("testdata", "fourletter", file))
		if err != nil {
			t.Fatal(err)
		}
		body[word] = b
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				word := make([]byte, 4)
				if _, err := io.ReadFull(c, word); err != nil {
					return
				}
				if b, ok := body[string(word)]; ok {
					_, _ = c.Write(b)
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// TestHealthWithRecordedKeeperAnswers replays what ClickHouse Keeper answers (its documentation's
// samples and its source's formats, testdata/fourletter/README.md) next to ZooKeeper's: Keeper
// cannot run on the local stack. Each case is one of the differences health.go names.
func TestHealthWithRecordedKeeperAnswers(t *testing.T) {
	cases := []struct {
		name    string
		answers map[string]string
		check   func(t *testing.T, h ServerHealth)
	}{{
		name:    "keeper 23.3 leader: v-prefixed version, unknown fd limit printed as 2^64-1, hex zxid",
		answers: map[string]string{"ruok": "ruok", "srvr": "keeper-23.3-leader.srvr", "mntr": "keeper-23.3-leader.mntr", "isro": "isro-rw"},
		check: func(t *testing.T, h ServerHealth) {
			want := ServerHealth{Kind: KindKeeper, OK: true, Mode: "leader", Version: "23.3.1.2823", ZnodeCount: 6,
				ApproxDataSize: 1271, OpenFDs: 48, MaxFDs: 0, LastZxid: 0x2a}
			same(t, h, want)
			if len(h.Warnings) != 0 {
				t.Errorf("warnings %v: an unknown fd limit is no reason to warn", h.Warnings)
			}
		},
	}, {
		name:    "keeper 23.3 follower whose allow list leaves out srvr and isro: kind from mntr, no zxid",
		answers: map[string]string{"ruok": "ruok", "mntr": "keeper-23.3-follower.mntr"},
		check: func(t *testing.T, h ServerHealth) {
			same(t, h, ServerHealth{Kind: KindKeeper, OK: true, Mode: "follower", Version: "23.3.1.2823", ZnodeCount: 6, ApproxDataSize: 1271, OpenFDs: 46})
		},
	}, {
		name:    "keeper 22.7 leader over the thresholds",
		answers: map[string]string{"ruok": "ruok", "mntr": "keeper-22.7-leader.mntr", "isro": "isro-rw"},
		check: func(t *testing.T, h ServerHealth) {
			same(t, h, ServerHealth{Kind: KindKeeper, OK: true, Mode: "leader", Version: "22.7.2.15", ZnodeCount: 135, ApproxDataSize: 42533, OpenFDs: 182})
			if len(h.Warnings) != 2 || !strings.Contains(h.Warnings[0], "znode count 135") || !strings.Contains(h.Warnings[1], "data size 42533") {
				t.Errorf("warnings %q: want znode count and data size", h.Warnings)
			}
		},
	}, {
		name:    "keeper 21.11: decimal zxid in srvr, a known fd limit",
		answers: map[string]string{"ruok": "ruok", "srvr": "keeper-21.11-leader.srvr", "mntr": "keeper-21.11-leader.mntr", "isro": "isro-rw"},
		check: func(t *testing.T, h ServerHealth) {
			same(t, h, ServerHealth{Kind: KindKeeper, OK: true, Mode: "leader", Version: "21.11.1.1", ZnodeCount: 4, ApproxDataSize: 723, OpenFDs: 310, MaxFDs: 10240, LastZxid: 34})
		},
	}, {
		name:    "keeper without a leader: ruok says imok, mntr and srvr say it serves nothing",
		answers: map[string]string{"ruok": "ruok", "srvr": "keeper-no-leader.srvr", "mntr": "keeper-no-leader.mntr", "isro": "isro-rw"},
		check: func(t *testing.T, h ServerHealth) {
			if h.OK || h.Kind != KindKeeper || !strings.Contains(h.Error, "not serving requests") || !strings.Contains(h.Error, "no leader") {
				t.Errorf("%+v: want a Keeper that is down for lack of a leader", h)
			}
		},
	}, {
		name:    "keeper whose allow list leaves out ruok: silence, not ZooKeeper's whitelist message",
		answers: map[string]string{"mntr": "keeper-23.3-leader.mntr"},
		check: func(t *testing.T, h ServerHealth) {
			if h.OK || !strings.Contains(h.Error, "answered nothing") || !strings.Contains(h.Error, "four_letter_word_allow_list") {
				t.Errorf("%+v: want the allow-list fix named", h)
			}
		},
	}, {
		name:    "keeper observer: isro says ro, yet it takes writes",
		answers: map[string]string{"ruok": "ruok", "mntr": "keeper-23.3-follower.mntr", "isro": "isro-ro"},
		check: func(t *testing.T, h ServerHealth) {
			if !h.OK || h.ReadOnly || len(h.Warnings) != 0 {
				t.Errorf("%+v: Keeper's ro is an observer, not a read-only server", h)
			}
		},
	}, {
		name:    "zookeeper 3.8 that lost its quorum: isro says ro",
		answers: map[string]string{"ruok": "ruok", "srvr": "zookeeper-3.8-standalone.srvr", "mntr": "zookeeper-3.8-standalone.mntr", "isro": "isro-ro"},
		check: func(t *testing.T, h ServerHealth) {
			if !h.OK || h.Kind != KindZooKeeper || h.Version != "3.8.0" || h.LastZxid != 0x60267 || h.MaxFDs != 20000 || !h.ReadOnly {
				t.Errorf("%+v", h)
			}
			if len(h.Warnings) == 0 || !strings.Contains(h.Warnings[0], "read-only") {
				t.Errorf("warnings %q: want read-only first", h.Warnings)
			}
		},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			addr := recordedServer(t, c.answers)
			hs := Health(context.Background(), []string{addr}, Thresholds{ZnodeCount: 100, DataSize: 10000}, 2*time.Second)
			c.check(t, hs[0])
		})
	}
}

// same compares the fields a case names; a field want leaves zero must be zero in got too.
func same(t *testing.T, got, want ServerHealth) {
	t.Helper()
	if got.Kind != want.Kind || got.OK != want.OK || got.Error != want.Error || got.Mode != want.Mode ||
		got.Version != want.Version || got.ReadOnly != want.ReadOnly || got.ZnodeCount != want.ZnodeCount ||
		got.ApproxDataSize != want.ApproxDataSize || got.OutstandingRequests != want.OutstandingRequests ||
		got.OpenFDs != want.OpenFDs || got.MaxFDs != want.MaxFDs || got.LastZxid != want.LastZxid {
		t.Errorf("health\n got %+v\nwant %+v", got, want)
	}
}
