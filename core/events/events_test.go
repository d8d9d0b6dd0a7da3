package events

import (
	"bufio"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/gatehouse/gatehouse/esp"
	"github.com/gatehouse/gatehouse/ike"
	"github.com/gatehouse/gatehouse/plugins/sdk"
)

// counter records what the metrics would count.
type counter struct {
	mu     sync.Mutex
	events []Record
	lost   int
}

func (c *counter) Event(r Record) { c.mu.Lock(); c.events = append(c.events, r); c.mu.Unlock() }
func (c *counter) Lost()          { c.mu.Lock(); c.lost++; c.mu.Unlock() }

// Every event becomes one JSON line with its stable id and name, and is
// counted.
func TestLinesAndCounting(t *testing.T) {
	c := &counter{}
	l := New(zap.NewNop(), c)
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	if err := l.Open(path); err != nil {
		t.Fatal(err)
	}
	remote := netip.MustParseAddr("198.51.100.7")
	l.Emit(FromIKE(ike.Event{ID: ike.EventIKEUp, Peer: "site", Remote: remote, Message: "IKE SA with site established"}))
	l.Emit(FromIKE(ike.Event{ID: ike.EventNegotiationErr, Peer: "site", Remote: remote, Reason: "no-proposal-chosen", Message: "no"}))
	l.Emit(Record{ID: sdk.EventUserConnected, Fields: map[string]string{"user": "alice"}})
	l.Emit(Record{ID: ReloadRefused, Message: "bad"})
	l.Close() // waits for the writer
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var recs []Record
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		recs = append(recs, r)
	}
	if len(recs) != 4 || len(c.events) != 4 {
		t.Fatalf("%d lines, %d counted: %+v", len(recs), len(c.events), recs)
	}
	if r := recs[0]; r.ID != 541 || r.Event != "ike-sa-up" || r.Tunnel != "site" || r.Remote != "198.51.100.7" || r.Time.IsZero() {
		t.Errorf("first record %+v", r)
	}
	if r := recs[2]; r.Event != "user-connected" || r.Fields["user"] != "alice" {
		t.Errorf("third record %+v", r)
	}
	if r := recs[3]; r.Event != "reload-refused" || c.events[1].Reason != "no-proposal-chosen" {
		t.Errorf("fourth record %+v, second counted %+v", r, c.events[1])
	}
}

// A full disk (/dev/full) loses records, counts them, and says so once,
// without blocking whoever emits.
func TestDiskFull(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("SKIP: no /dev/full on this system")
	}
	core, logs := observer.New(zap.InfoLevel)
	c := &counter{}
	l := New(zap.New(core), c)
	if err := l.Open("/dev/full"); err != nil {
		t.Fatal(err)
	}
	// Emit never waits for the writer: were it to, this loop would hang.
	for range 3 * queueLen {
		l.Emit(Record{ID: ike.EventIKEUp})
	}
	l.Close()
	if n := l.Lost(); n != 3*queueLen || c.lost != int(n) {
		t.Fatalf("lost %d (counted %d), want %d", n, c.lost, 3*queueLen)
	}
	if got := logs.FilterMessageSnippet("audit log write failed").Len(); got != 1 {
		t.Fatalf("%d error lines, want 1", got)
	}
}

// A tunnel's IPsec SA events name the subnet pair the SA carries; a
// transport SA's do not.
func TestChildEventsNameThePair(t *testing.T) {
	sel := func(s string) ike.Selector { return ike.Selector{Prefix: netip.MustParsePrefix(s)} }
	gcm, err := esp.ParseSuite("aes128gcm16")
	if err != nil {
		t.Fatal(err)
	}
	tunnel := &ike.ChildSA{Suite: gcm, Tunnel: true, InSPI: 0x1001, OutSPI: 0x2002, LocalTS: sel("10.3.0.0/24"), RemoteTS: sel("10.4.0.0/24")}
	r := FromIKE(ike.Event{ID: ike.EventChildUp, Peer: "site", Child: tunnel})
	if r.Fields["local_ts"] != "10.3.0.0/24" || r.Fields["remote_ts"] != "10.4.0.0/24" || r.Fields["in_spi"] != "0x00001001" {
		t.Fatalf("tunnel child fields: %v", r.Fields)
	}
	transport := &ike.ChildSA{Suite: gcm, InSPI: 0x1001, OutSPI: 0x2002, LocalTS: sel("192.0.2.1/32"), RemoteTS: sel("192.0.2.2/32")}
	if r := FromIKE(ike.Event{ID: ike.EventChildUp, Peer: "remote-access", Child: transport}); r.Fields["local_ts"] != "" {
		t.Fatalf("transport child fields: %v", r.Fields)
	}
}
