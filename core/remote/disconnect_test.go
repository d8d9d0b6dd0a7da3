package remote

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/md5"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2869"

	"github.com/gatehouse/gatehouse/core/config"
)

// TestDisconnectRequestsRefuseReplays runs the Dynamic Authorization
// listener on loopback: a request for nobody gets a NAK; the same bytes
// again from the same socket get the same NAK (a retransmission); from
// another socket, nothing (a replay), and the log says so; a request
// without an Event-Timestamp is refused.
func TestDisconnectRequestsRefuseReplays(t *testing.T) {
	dir := t.TempDir()
	secret := []byte("dae-lab-secret")
	sf := filepath.Join(dir, "radius.secret")
	if err := os.WriteFile(sf, append(secret, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.DebugLevel)
	r, err := newAccess(zap.New(core), &config.RemoteAccess{Pool: config.Prefix{Prefix: netip.MustParsePrefix("10.8.0.0/24")}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	probe, _ := net.ListenPacket("udp", "127.0.0.1:0")
	listen := probe.LocalAddr().String()
	probe.Close()
	rc := &config.Radius{Servers: []config.RadiusServer{{Address: "127.0.0.1:1812", SecretFile: sf}}, DisconnectListen: listen,
		DisconnectWindow: config.Duration{Duration: 5 * time.Minute}}
	if err := r.startDisconnects(ctx, rc); err != nil {
		t.Fatal(err)
	}
	request := func(ts bool) []byte {
		p := radius.New(radius.CodeDisconnectRequest, secret)
		rfc2865.UserName_SetString(p, "nobody")
		if ts {
			rfc2869.EventTimestamp_Set(p, time.Now())
		}
		rfc2869.MessageAuthenticator_Set(p, make([]byte, 16))
		p.Authenticator = [16]byte{}
		b, _ := p.MarshalBinary()
		m := hmac.New(md5.New, secret)
		m.Write(b)
		rfc2869.MessageAuthenticator_Set(p, m.Sum(nil))
		out, _ := p.Encode()
		return out
	}
	ask := func(c net.PacketConn, b []byte) []byte {
		t.Helper()
		to, _ := net.ResolveUDPAddr("udp", listen)
		if _, err := c.WriteTo(b, to); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		buf := make([]byte, 4096)
		n, _, err := c.ReadFrom(buf)
		if err != nil {
			return nil
		}
		return bytes.Clone(buf[:n])
	}
	first, _ := net.ListenPacket("udp", "127.0.0.1:0")
	other, _ := net.ListenPacket("udp", "127.0.0.1:0")
	defer first.Close()
	defer other.Close()
	req := request(true)
	nak := ask(first, req)
	if len(nak) < 20 || radius.Code(nak[0]) != radius.CodeDisconnectNAK {
		t.Fatalf("a request for nobody: %x", nak)
	}
	if again := ask(first, req); !bytes.Equal(again, nak) {
		t.Fatalf("a retransmission got %x, want the first answer %x", again, nak)
	}
	if got := ask(other, req); got != nil {
		t.Fatalf("a replay from another socket was answered: %x", got)
	}
	if got := ask(first, request(false)); got != nil {
		t.Fatalf("a request without an Event-Timestamp was answered: %x", got)
	}
	var said []string
	for _, e := range logs.FilterMessage("Disconnect-Request refused").All() {
		said = append(said, e.ContextMap()["error"].(string))
	}
	if len(said) != 2 || !strings.Contains(said[0], "replayed") || !strings.Contains(said[1], "no Event-Timestamp") {
		t.Fatalf("refusals logged: %q", said)
	}
	if n := len(logs.FilterMessage("Disconnect-Request").All()); n != 1 {
		t.Fatalf("the request was acted on %d times, want once", n)
	}
}
