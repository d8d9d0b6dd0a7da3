package remote

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/gatehouse/gatehouse/core/config"
	"github.com/gatehouse/gatehouse/core/dataplane"
	"github.com/gatehouse/gatehouse/l2tp"
)

// TestCleartextBesideIPsec: with allow_cleartext_l2tp a client connects
// without IPsec through the real l2tp plugin, from the same address as a
// client with an SA. Each session is installed for its own transport,
// every answer goes back the way its client came (the rig fails a message
// sent the other way), the SA's end takes only the IPsec session, and a
// cleartext peer is forgotten only once it is silent and holds no
// session.
func TestCleartextBesideIPsec(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the plugin binary")
	}
	g, _ := newPluginRig(t, &config.RemoteAccess{Pool: config.Prefix{Prefix: netip.MustParsePrefix("10.8.0.0/24")},
		PPP: config.PPP{Auth: []string{"mschapv2"}, MRU: 1400}, AllowCleartextL2TP: true})
	r := g.r
	alice := g.dialVia(4500, "alice", "correct horse", false)
	carol := g.dialVia(l2tp.Port, "carol", "no ipsec here", true)
	if !g.pump(func() bool { return alice.up != nil && carol.up != nil && r.table.Len() == 2 }) {
		t.Fatalf("not both connected: alice %v, carol %v, %d sessions, %d dropped", alice.up, carol.up, r.table.Len(), r.dropped.Load())
	}
	byUser := map[string]*dataplane.L2TPSession{}
	for _, s := range r.table.All() {
		byUser[s.User] = s
	}
	if s := byUser["carol"]; s == nil || !s.Clear || s.Peer != carol.peer || s.L2TPPort != l2tp.Port || s.Local != raServerClear {
		t.Fatalf("carol's session: %+v", s)
	}
	if s := byUser["alice"]; s == nil || s.Clear || s.Peer != alice.peer || s.OutKey != OutKey(alice.peer) {
		t.Fatalf("alice's session: %+v", s)
	}

	r.PeerGone(netip.AddrPortFrom(carol.peer.Addr(), l2tp.Port), "an SA of the same address and port as carol's L2TP")
	if r.table.Len() != 2 {
		t.Fatal("an IPsec SA's end took a cleartext session")
	}
	r.PeerGone(alice.peer, "DPD")
	if r.table.Len() != 1 || r.table.All()[0].User != "carol" {
		t.Fatalf("after alice's SA went: %d sessions", r.table.Len())
	}

	later := time.Now().Add(2 * clearPeerIdle)
	r.forgetClearPeers(later)
	if !r.knows(peerKey{carol.peer, true}) {
		t.Fatal("a silent cleartext peer with a session was forgotten")
	}
	if ended := r.Disconnect("carol"); len(ended) != 1 {
		t.Fatalf("disconnect carol: %d sessions ended", len(ended))
	}
	r.forgetClearPeers(later)
	if r.knows(peerKey{carol.peer, true}) {
		t.Fatal("a silent cleartext peer without a session is still known")
	}
}

// TestCleartextPeersBounded: spoofed cleartext sources cannot grow the
// peer table past maxClearPeers; known peers and IPsec peers still pass.
func TestCleartextPeersBounded(t *testing.T) {
	r, err := newAccess(zap.NewNop(), &config.RemoteAccess{Pool: config.Prefix{Prefix: netip.MustParsePrefix("10.8.0.0/24")}, AllowCleartextL2TP: true})
	if err != nil {
		t.Fatal(err)
	}
	from := func(i int) netip.AddrPort {
		return netip.MustParseAddrPort(fmt.Sprintf("198.51.%d.%d:1701", 100+i/250, 1+i%250))
	}
	for i := 0; i < maxClearPeers; i++ {
		if !r.notePeer(dataplane.L2TPControl{Peer: from(i), ClientL2TPPort: 1701}) {
			t.Fatalf("peer %d refused below the limit", i)
		}
	}
	if r.notePeer(dataplane.L2TPControl{Peer: from(maxClearPeers), ClientL2TPPort: 1701}) {
		t.Fatal("a cleartext peer past the limit was taken")
	}
	if !r.notePeer(dataplane.L2TPControl{Peer: from(7), ClientL2TPPort: 1701}) {
		t.Fatal("a known cleartext peer was refused at the limit")
	}
	if !r.notePeer(dataplane.L2TPControl{Peer: from(maxClearPeers), SPI: 0x1234, ClientL2TPPort: 1701}) {
		t.Fatal("an IPsec peer was refused because of cleartext peers")
	}
	r.forgetClearPeers(time.Now().Add(2 * clearPeerIdle))
	if r.clearN != 0 || len(r.peers) != 1 {
		t.Fatalf("after the idle time: %d cleartext peers, %d in all", r.clearN, len(r.peers))
	}
}

func (r *Access) knows(k peerKey) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.peers[k]
	return ok
}
