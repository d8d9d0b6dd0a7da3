// Command v2dial sets up one IKEv2 SA and its first child SA as
// initiator with ike/ikev2's exchanges, over UDP 500 (and 4500 once NAT is
// detected, RFC 7296 section 2.23), and prints what was agreed as JSON.
// The IKEv2 lab runs it against strongSwan until the daemon drives IKEv2
// itself.
package main

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/esp"
	"github.com/gatehouse/gatehouse/ike/ikev2"
)

func main() {
	local := flag.String("local", "192.0.2.1", "our address")
	server := flag.String("server", "192.0.2.2", "the responder")
	ike := flag.String("ike", "aes256-sha256-ecp256", "IKE SA suites, comma-separated")
	espS := flag.String("esp", "aes256-sha256", "ESP suites, comma-separated")
	id := flag.String("id", "gw-a.example.net", "our identity (FQDN)")
	pskFile := flag.String("psk-file", "", "file with the preshared key")
	localTS := flag.String("local-ts", "10.1.0.0/24", "our subnet")
	remoteTS := flag.String("remote-ts", "10.2.0.0/24", "the responder's subnet")
	ping := flag.String("ping", "", "once the child is up, send an ICMP echo from --ping-from to this address through it, and wait for the reply")
	pingFrom := flag.String("ping-from", "10.1.0.10", "the echo's source, inside --local-ts")
	rekey := flag.Bool("rekey", false, "after --ping, rekey the child (CREATE_CHILD_SA, then the old child's delete) and ping through the new one")
	respondMode := flag.Bool("respond", false, "answer --server's IKE_SA_INIT and IKE_AUTH instead, then answer --echoes ICMP echoes to --ping-from through the child SA")
	echoes := flag.Int("echoes", 3, "with --respond: how many echoes to answer before printing the result")
	peerID := flag.String("peer-id", "gw-b.example.net", "with --respond: the initiator's identity (FQDN) the key is for")
	flag.Parse()
	if *respondMode {
		if err := serve(*local, *ike, *espS, *id, *peerID, *pskFile, *localTS, *remoteTS, *pingFrom, *echoes); err != nil {
			fmt.Fprintln(os.Stderr, "v2dial:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(*local, *server, *ike, *espS, *id, *pskFile, *localTS, *remoteTS, *ping, *pingFrom, *rekey); err != nil {
		fmt.Fprintln(os.Stderr, "v2dial:", err)
		os.Exit(1)
	}
}

type result struct {
	IKE, ESP      string
	NAT           bool
	InSPI, OutSPI string
	TSi, TSr      []string
	// Pinged: an echo sealed with the child's initiator-to-responder keys
	// was answered by a reply that opened with the other direction's.
	Pinged bool
	// Children: how many child SAs were made (a rekey makes another).
	Children int
}

// side reads the suites, the key and the selectors both modes share.
func side(ikeS, espS, id, pskFile, localTS, remoteTS string) ([]ikev2.Proposal, ikev2.AuthSide, error) {
	var auth ikev2.AuthSide
	key, err := os.ReadFile(pskFile)
	if err != nil {
		return nil, auth, err
	}
	var props []ikev2.Proposal
	for _, s := range strings.Split(ikeS, ",") {
		p, err := ikev2.ParseProposal(s)
		if err != nil {
			return nil, auth, err
		}
		props = append(props, p)
	}
	var suites []esp.Suite
	for _, s := range strings.Split(espS, ",") {
		su, err := esp.ParseSuite(s)
		if err != nil {
			return nil, auth, err
		}
		suites = append(suites, su)
	}
	lts, err := netip.ParsePrefix(localTS)
	if err != nil {
		return nil, auth, err
	}
	rts, err := netip.ParsePrefix(remoteTS)
	if err != nil {
		return nil, auth, err
	}
	auth = ikev2.AuthSide{ID: &ikev2.ID{IDType: ikev2.IDFQDN, Data: []byte(id)}, PSK: []byte(strings.TrimSpace(string(key))),
		Suites: suites, Local: []ikev2.Selector{ikev2.PrefixSelector(lts)}, Remote: []ikev2.Selector{ikev2.PrefixSelector(rts)}}
	return props, auth, nil
}

func randSPI() uint32 {
	var b [4]byte
	rand.Read(b[:])
	return binary.BigEndian.Uint32(b[:]) | 0xc0000000
}

func run(local, server, ikeS, espS, id, pskFile, localTS, remoteTS, ping, pingFrom string, rekey bool) error {
	var cfg ikev2.InitiatorConfig
	var err error
	if cfg.Proposals, cfg.Auth, err = side(ikeS, espS, id, pskFile, localTS, remoteTS); err != nil {
		return err
	}
	rand.Read(cfg.SPIi[:])
	cfg.InSPI, cfg.Rand = randSPI(), rand.Reader
	cfg.Local, cfg.Remote = netip.MustParseAddrPort(local+":500"), netip.MustParseAddrPort(server+":500")
	in, err := ikev2.NewInitiator(cfg)
	if err != nil {
		return err
	}
	c500, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(cfg.Local))
	if err != nil {
		return err
	}
	defer c500.Close()
	req, err := in.Start()
	conn, to, marker := c500, cfg.Remote, false
	for step := 0; err == nil && req != nil; step++ {
		if step > 8 {
			return errors.New("too many exchanges")
		}
		if in.SPIr() != (ikev2.SPI{}) && in.NAT().WeBehind || in.NAT().PeerBehind {
			// NAT: IKE_AUTH and what follows go to port 4500 with the
			// non-ESP marker (RFC 7296 2.23, RFC 3948 2.2).
			if !marker {
				c4500, lerr := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(cfg.Local.Addr(), 4500)))
				if lerr != nil {
					return lerr
				}
				defer c4500.Close()
				conn, to, marker = c4500, netip.AddrPortFrom(cfg.Remote.Addr(), 4500), true
			}
		}
		var resp []byte
		if resp, err = exchange(conn, to, req, marker); err == nil {
			req, err = in.Receive(resp)
		}
	}
	if err != nil {
		return err
	}
	r := describe(in.Suite(), in.Child(), marker)
	if ping != "" {
		if !marker {
			return errors.New("--ping needs UDP encapsulation (strongSwan's encap = yes)")
		}
		if err := pingThrough(conn, to, in.Child(), netip.MustParseAddr(pingFrom), netip.MustParseAddr(ping)); err != nil {
			return err
		}
		r.Pinged = true
	}
	if rekey && r.Pinged {
		req, err := in.RekeyChild(0, randSPI())
		for step := 0; err == nil && req != nil; step++ {
			if step > 4 {
				return errors.New("the rekey did not finish")
			}
			var resp []byte
			if resp, err = exchange(conn, to, req, marker); err == nil {
				req, err = in.Receive(resp)
			}
		}
		if err != nil {
			return fmt.Errorf("rekey: %w", err)
		}
		if err := pingThrough(conn, to, in.Child(), netip.MustParseAddr(pingFrom), netip.MustParseAddr(ping)); err != nil {
			return fmt.Errorf("after the rekey: %w", err)
		}
		r = describe(in.Suite(), in.Child(), marker)
		r.Pinged, r.Children = true, 2
	}
	return json.NewEncoder(os.Stdout).Encode(r)
}

func describe(suite ikev2.Proposal, c *ikev2.Child, nat bool) result {
	r := result{IKE: suite.String(), ESP: c.Suite.String(), NAT: nat, InSPI: fmt.Sprintf("%08x", c.InSPI), OutSPI: fmt.Sprintf("%08x", c.OutSPI)}
	for _, s := range c.TSi {
		r.TSi = append(r.TSi, s.StartAddr.String()+"-"+s.EndAddr.String())
	}
	for _, s := range c.TSr {
		r.TSr = append(r.TSr, s.StartAddr.String()+"-"+s.EndAddr.String())
	}
	return r
}

// datagram is one read from the responder's sockets.
type datagram struct {
	b    []byte
	from netip.AddrPort
	conn *net.UDPConn
	nat  bool // port 4500: IKE behind the non-ESP marker, or ESP
}

// serve answers one IKE SA and its child, then echoes through it.
func serve(local, ikeS, espS, id, peerID, pskFile, localTS, remoteTS, pingAs string, echoes int) error {
	props, auth, err := side(ikeS, espS, id, pskFile, localTS, remoteTS)
	if err != nil {
		return err
	}
	cfg := ikev2.ResponderConfig{Proposals: props, Auth: auth, InSPI: randSPI(), Local: netip.MustParseAddrPort(local + ":500"), Rand: rand.Reader,
		PSK: func(i *ikev2.ID) ([]byte, error) {
			if string(i.Data) != peerID {
				return nil, fmt.Errorf("no key for %q", i.Data)
			}
			return auth.PSK, nil
		}}
	rand.Read(cfg.SPIr[:])
	cfg.NewSPI = randSPI
	r := ikev2.NewResponder(cfg)
	in := make(chan datagram, 16)
	for _, port := range []uint16{500, 4500} {
		c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(cfg.Local.Addr(), port)))
		if err != nil {
			return err
		}
		defer c.Close()
		go func() {
			for {
				buf := make([]byte, 65535)
				n, from, err := c.ReadFromUDPAddrPort(buf)
				if err != nil {
					return
				}
				in <- datagram{buf[:n], from, c, port == 4500}
			}
		}()
	}
	// The child SAs' ESP, by our inbound SPI: a rekey adds one.
	type espPair struct {
		in  *esp.Inbound
		out *esp.Outbound
	}
	sas := map[uint32]espPair{}
	answered := 0
	deadline := time.After(60 * time.Second)
	for answered < echoes {
		var d datagram
		select {
		case d = <-in:
		case <-deadline:
			return fmt.Errorf("%d of %d echoes answered in 60 s (IKE done: %v)", answered, echoes, r.Done())
		}
		b := d.b
		if d.nat && (len(b) < 4 || binary.BigEndian.Uint32(b) != 0) {
			if len(b) < 8 {
				continue // a keepalive
			}
			sa, ok := sas[binary.BigEndian.Uint32(b)]
			if !ok {
				continue // ESP for no child of ours (yet, or any more)
			}
			reply, err := echoReply(sa.in, sa.out, b, netip.MustParseAddr(pingAs))
			if err != nil {
				return err
			}
			if _, err := d.conn.WriteToUDPAddrPort(reply, d.from); err != nil {
				return err
			}
			answered++
			continue
		}
		if d.nat {
			b = b[4:]
		}
		resp, err := r.Receive(b, d.from)
		if err != nil {
			return err
		}
		if d.nat {
			resp = append(make([]byte, 4), resp...)
		}
		if _, err := d.conn.WriteToUDPAddrPort(resp, d.from); err != nil {
			return err
		}
		for _, c := range r.Children() {
			if _, ok := sas[c.InSPI]; ok {
				continue
			}
			in, err := esp.NewInbound(esp.Config{SPI: c.InSPI, Suite: c.Suite, EncKey: c.Keys.EncIR, IntegKey: c.Keys.IntegIR})
			if err != nil {
				return err
			}
			out, err := esp.NewOutbound(esp.Config{SPI: c.OutSPI, Suite: c.Suite, EncKey: c.Keys.EncRI, IntegKey: c.Keys.IntegRI})
			if err != nil {
				return err
			}
			sas[c.InSPI] = espPair{in, out}
		}
	}
	kids := r.Children()
	if len(kids) == 0 {
		return errors.New("no child SA left")
	}
	res := describe(r.Suite(), kids[len(kids)-1], r.NAT().PeerBehind || r.NAT().WeBehind)
	res.Pinged, res.Children = true, len(sas)
	return json.NewEncoder(os.Stdout).Encode(res)
}

// echoReply opens an ESP packet carrying an ICMP echo to us and seals the
// reply.
func echoReply(in *esp.Inbound, out *esp.Outbound, pkt []byte, us netip.Addr) ([]byte, error) {
	inner, nh, err := in.Open(pkt)
	if err != nil {
		return nil, fmt.Errorf("ESP does not open with our inbound keys: %w", err)
	}
	info, err := esp.ParseIP(inner)
	if err != nil || nh != esp.ProtoIPv4 || info.Proto != 1 || info.Dst != us || inner[info.HeaderLen] != 8 {
		return nil, fmt.Errorf("not an echo request to %v (next header %d, %+v)", us, nh, info)
	}
	icmp := append([]byte(nil), inner[info.HeaderLen:info.TotalLen]...)
	icmp[0] = 0 // echo reply
	return sealICMP(out, us, info.Src, icmp)
}

// sealICMP puts an ICMP message (its checksum filled in here) in an IPv4
// packet from src to dst and seals it for the child SA.
func sealICMP(out *esp.Outbound, src, dst netip.Addr, icmp []byte) ([]byte, error) {
	icmp[2], icmp[3] = 0, 0
	binary.BigEndian.PutUint16(icmp[2:], esp.Checksum(icmp, 0))
	buf := make([]byte, 2048)
	h := out.Headroom()
	esp.PutIPv4Header(buf[h:], src, dst, 1, 64, 1, len(icmp))
	n := copy(buf[h+esp.IPv4HeaderLen:], icmp) + esp.IPv4HeaderLen
	return out.Seal(buf, n, esp.ProtoIPv4)
}

// pingThrough sends one ICMP echo through the child SA as ESP in UDP
// (RFC 3948) and waits for the reply on the same socket.
func pingThrough(c *net.UDPConn, to netip.AddrPort, child *ikev2.Child, src, dst netip.Addr) error {
	out, err := esp.NewOutbound(esp.Config{SPI: child.OutSPI, Suite: child.Suite, EncKey: child.Keys.EncIR, IntegKey: child.Keys.IntegIR})
	if err != nil {
		return err
	}
	in, err := esp.NewInbound(esp.Config{SPI: child.InSPI, Suite: child.Suite, EncKey: child.Keys.EncRI, IntegKey: child.Keys.IntegRI})
	if err != nil {
		return err
	}
	pkt, err := sealICMP(out, src, dst, []byte{8, 0, 0, 0, 0x47, 0x48, 0, 1, 'v', '2', 'd', 'i', 'a', 'l'})
	if err != nil {
		return err
	}
	rbuf := make([]byte, 65535)
	for try := 0; try < 4; try++ {
		if _, err := c.WriteToUDPAddrPort(pkt, to); err != nil {
			return err
		}
		c.SetReadDeadline(time.Now().Add(time.Second))
		for {
			m, _, err := c.ReadFromUDPAddrPort(rbuf)
			if err != nil {
				break // time to send again
			}
			if m < 8 || binary.BigEndian.Uint32(rbuf) != child.InSPI {
				continue // IKE, a keepalive, or another SA
			}
			inner, nh, err := in.Open(rbuf[:m])
			if err != nil {
				return fmt.Errorf("the reply does not open with our inbound keys: %w", err)
			}
			info, err := esp.ParseIP(inner)
			if err != nil || nh != esp.ProtoIPv4 || info.Proto != 1 || info.Src != dst || inner[info.HeaderLen] != 0 {
				return fmt.Errorf("not our echo reply (next header %d, %+v)", nh, info)
			}
			return nil
		}
	}
	return fmt.Errorf("no echo reply from %v through the child SA", dst)
}

// exchange sends req and waits for the answer, sending again every
// second, four times at most.
func exchange(c *net.UDPConn, to netip.AddrPort, req []byte, marker bool) ([]byte, error) {
	if marker {
		req = append(make([]byte, 4), req...)
	}
	buf := make([]byte, 65535)
	for try := 0; try < 4; try++ {
		if _, err := c.WriteToUDPAddrPort(req, to); err != nil {
			return nil, err
		}
		c.SetReadDeadline(time.Now().Add(time.Second))
		n, _, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return nil, err
		}
		b := buf[:n]
		if marker {
			if len(b) < 4 || binary.BigEndian.Uint32(b) != 0 {
				continue // ESP or a keepalive, not IKE
			}
			b = b[4:]
		}
		return append([]byte(nil), b...), nil
	}
	return nil, fmt.Errorf("no answer from %v", to)
}
