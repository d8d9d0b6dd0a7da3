// Command v2ra runs ike/ikev2's engine as a remote-access server on UDP
// 500 and 4500: the server proves itself with a certificate, clients log
// in by EAP-MSCHAPv2 against one user, and each gets an address from
// 10.8.0.0/24. Once a client's child SA is up it prints, as JSON, the
// user, the address and the child's selectors, and exits. The IKEv2 lab
// runs strongSwan road warriors against it until gatehoused serves IKEv2
// remote access itself.
//
// strongSwan's TLS does not negotiate Extended Master Secret (RFC 7627),
// without which crypto/tls exports EAP-TLS keys (RFC 5216) only when told.
//
//go:debug tlsunsafeekm=1
package main

import (
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gatehouse/gatehouse/auth/eap"
	"github.com/gatehouse/gatehouse/auth/radius"
	"github.com/gatehouse/gatehouse/esp"
	"github.com/gatehouse/gatehouse/ike"
	"github.com/gatehouse/gatehouse/ike/ikev2"
	"github.com/gatehouse/gatehouse/ppp"
)

// host is the engine's daemon here: two sockets, the certificate, and a
// channel for the first child.
type host struct {
	s500, s4500 *net.UDPConn
	chain       [][]byte
	key         crypto.Signer
	id          []byte
	spi         atomic.Uint32
	up          chan *ike.ChildSA
	log         chan string
	psk         []byte
}

func (h *host) Send(b []byte, local, remote netip.AddrPort) error {
	if local.Port() == 4500 {
		_, err := h.s4500.WriteToUDPAddrPort(append([]byte{0, 0, 0, 0}, b...), remote)
		return err
	}
	_, err := h.s500.WriteToUDPAddrPort(b, remote)
	return err
}
func (h *host) SendKeepalive(netip.AddrPort, netip.AddrPort) error { return nil }
func (h *host) PSK(*ike.PeerConfig, netip.Addr, *ike.ID) ([]byte, error) {
	if h.psk == nil {
		return nil, errors.New("no preshared keys here")
	}
	return append([]byte(nil), h.psk...), nil
}
func (h *host) LocalCredentials(*ike.PeerConfig, uint16, [][]byte) (*ike.LocalCredentials, error) {
	return &ike.LocalCredentials{Chain: h.chain, ID: &ike.ID{IDType: ike.IDDERASN1DN, Data: h.id}}, nil
}
func (h *host) Sign(*ike.PeerConfig, uint16, []byte) ([]byte, error) {
	return nil, errors.New("IKEv1 only")
}
func (h *host) SignDigest(_ *ike.PeerConfig, _ uint16, scheme string, digest []byte) ([]byte, error) {
	return ike.SignDigest(h.key, scheme, digest)
}
func (h *host) VerifyPeer(*ike.PeerConfig, uint16, [][]byte, *ike.ID) (*ike.PeerCredentials, error) {
	return nil, errors.New("clients authenticate by EAP here")
}
func (h *host) GSSStep(*ike.PeerConfig, *ike.GSSContext, []byte) ([]byte, error) {
	return nil, errors.ErrUnsupported
}
func (h *host) GSSWrap(*ike.PeerConfig, *ike.GSSContext, []byte) ([]byte, error) {
	return nil, errors.ErrUnsupported
}
func (h *host) GSSUnwrap(*ike.PeerConfig, *ike.GSSContext, []byte) ([]byte, error) {
	return nil, errors.ErrUnsupported
}
func (h *host) GSSRelease(*ike.PeerConfig, *ike.GSSContext) {}
func (h *host) AllocSPI() (uint32, error)                   { return 0xc0000000 + h.spi.Add(1), nil }
func (h *host) InstallInbound(*ike.ChildSA) error           { return nil }
func (h *host) InstallOutbound(c *ike.ChildSA) error {
	select {
	case h.up <- c:
	default:
	}
	return nil
}
func (h *host) DeleteChild(*ike.ChildSA)     {}
func (h *host) MoveChild(*ike.ChildSA) error { return nil }
func (h *host) Event(e ike.Event) {
	select {
	case h.log <- e.Message:
	default:
	}
}

func main() {
	local := flag.String("local", "192.0.2.2", "the address to serve on")
	cert := flag.String("cert", "", "the server's certificate (PEM)")
	keyFile := flag.String("key", "", "its key (PEM)")
	user := flag.String("user", "alice", "the one user")
	password := flag.String("password", "", "its password")
	wait := flag.Duration("wait", 30*time.Second, "how long to wait for a client")
	psk := flag.String("psk", "", "authenticate both sides by this preshared key instead of a certificate and EAP")
	radiusAddr := flag.String("radius", "", "relay EAP to this RADIUS server (host:port) instead of checking --user and --password")
	radiusSecret := flag.String("radius-secret", "", "its shared secret")
	eapTLSCA := flag.String("eap-tls", "", "run EAP-TLS, taking client certificates this CA (PEM) issued")
	waitMove := flag.Bool("wait-move", false, "once the client is up, wait until it moves (MOBIKE) before printing")
	flag.Parse()
	var relay *radius.Client
	if *radiusAddr != "" {
		var err error
		relay, err = radius.New(radius.Config{Servers: []radius.Server{{Addr: *radiusAddr, Secret: []byte(*radiusSecret)}}, RequireMessageAuthenticator: true})
		if err != nil {
			fmt.Fprintln(os.Stderr, "v2ra:", err)
			os.Exit(2)
		}
	}
	if err := run(*local, *cert, *keyFile, *user, *password, *psk, relay, *eapTLSCA, *waitMove, *wait); err != nil {
		fmt.Fprintln(os.Stderr, "v2ra:", err)
		os.Exit(1)
	}
}

func run(local, certFile, keyFile, user, password, psk string, relay *radius.Client, eapTLSCA string, waitMove bool, wait time.Duration) error {
	addr := netip.MustParseAddr(local)
	h := &host{up: make(chan *ike.ChildSA, 1), log: make(chan string, 64)}
	auth := []uint16{ike.AuthPSK}
	if psk != "" {
		h.psk = []byte(psk)
	} else {
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return err
		}
		leaf, err := x509.ParseCertificate(pair.Certificate[0])
		if err != nil {
			return err
		}
		method, err := ike.SignatureMethod(leaf.PublicKey)
		if err != nil {
			return err
		}
		h.chain, h.key, h.id, auth = pair.Certificate, pair.PrivateKey.(crypto.Signer), leaf.RawSubject, []uint16{method}
	}
	var err error
	if h.s500, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, 500))); err != nil {
		return err
	}
	if h.s4500, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, 4500))); err != nil {
		return err
	}
	suites := []ikev2.Proposal{}
	for _, s := range []string{"aes256-sha256-ecp256", "aes256-sha256-modp2048", "aes128gcm16-prfsha256-ecp256"} {
		p, err := ikev2.ParseProposal(s)
		if err != nil {
			return err
		}
		suites = append(suites, p)
	}
	var espSuites []esp.Suite
	for _, s := range []string{"aes128gcm16", "aes256-sha256"} {
		su, err := esp.ParseSuite(s)
		if err != nil {
			return err
		}
		espSuites = append(espSuites, su)
	}
	hash := ppp.NTPasswordHash(password)
	leased := ""
	peer := &ikev2.Peer{PeerConfig: &ike.PeerConfig{Name: "road-warriors", Local: addr, Auth: auth, ESP: espSuites,
		Lifetime: time.Hour, ESPLifetime: time.Hour}, Suites: suites,
		RemoteAccess: &ikev2.RemoteAccess{Inside: []netip.Prefix{netip.MustParsePrefix("10.2.0.0/24")},
			EAP: ikev2.MSCHAPv2("v2ra", eap.NTHashVerifier(func(u string) ([16]byte, bool) { return hash, u == user }), rand.Reader),
			Lease: func(u string, _ netip.AddrPort, _ netip.Addr) (netip.Addr, []netip.Addr, error) {
				leased = u
				return netip.MustParseAddr("10.8.0.2"), []netip.Addr{netip.MustParseAddr("10.2.0.53")}, nil
			},
			Release: func(netip.Addr, string) {}}}
	m, err := ikev2.NewManager(ikev2.Config{Host: h})
	if err != nil {
		return err
	}
	if psk != "" {
		peer.RemoteAccess.EAP = nil
	}
	if relay != nil {
		peer.RemoteAccess.EAP = func(netip.AddrPort) ikev2.EAPSession { return eap.NewRelay(relay.EAP, "", 5*time.Second, rand.Reader) }
	}
	if eapTLSCA != "" {
		pem, err := os.ReadFile(eapTLSCA)
		if err != nil {
			return err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("%s: no certificate", eapTLSCA)
		}
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return err
		}
		cfg := &tls.Config{Certificates: []tls.Certificate{pair}, ClientCAs: pool}
		peer.RemoteAccess.EAP = func(netip.AddrPort) ikev2.EAPSession { return eap.NewTLSServer(cfg, rand.Reader) }
	}
	m.SetPeers([]*ikev2.Peer{peer})
	read := func(c *net.UDPConn, port uint16) {
		buf := make([]byte, 65535)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			b := buf[:n]
			if port == 4500 {
				if n < 4 || b[0]|b[1]|b[2]|b[3] != 0 {
					continue // ESP or a keepalive: not ours here
				}
				b = b[4:]
			}
			m.Receive(append([]byte(nil), b...), netip.AddrPortFrom(addr, port), netip.AddrPortFrom(from.Addr().Unmap(), from.Port()))
		}
	}
	go read(h.s500, 500)
	go read(h.s4500, 4500)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(wait)
	var events []string
	var child *ike.ChildSA
	report := func(moved string) error {
		time.Sleep(200 * time.Millisecond) // let the last answer leave
		out := struct {
			User, Address string
			Local, Remote string
			Moved         string
			Events        []string
		}{leased, "10.8.0.2", child.LocalTS.Prefix.String(), child.RemoteTS.Prefix.String(), moved, events}
		return json.NewEncoder(os.Stdout).Encode(out)
	}
	for {
		select {
		case child = <-h.up:
			if !waitMove {
				return report("")
			}
		case e := <-h.log:
			events = append(events, e)
			if child != nil && strings.Contains(e, "(MOBIKE)") {
				return report(e)
			}
		case <-tick.C:
			m.Tick()
		case <-deadline:
			return fmt.Errorf("no client came up within %v; events: %q", wait, events)
		}
	}
}
