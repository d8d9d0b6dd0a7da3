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
	flag.Parse()
	if err := run(*local, *server, *ike, *espS, *id, *pskFile, *localTS, *remoteTS, *ping, *pingFrom); err != nil {
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
}

func run(local, server, ikeS, espS, id, pskFile, localTS, remoteTS, ping, pingFrom string) error {
	key, err := os.ReadFile(pskFile)
	if err != nil {
		return err
	}
	var cfg ikev2.InitiatorConfig
	for _, s := range strings.Split(ikeS, ",") {
		p, err := ikev2.ParseProposal(s)
		if err != nil {
			return err
		}
		cfg.Proposals = append(cfg.Proposals, p)
	}
	var suites []esp.Suite
	for _, s := range strings.Split(espS, ",") {
		su, err := esp.ParseSuite(s)
		if err != nil {
			return err
		}
		suites = append(suites, su)
	}
	lts, err := netip.ParsePrefix(localTS)
	if err != nil {
		return err
	}
	rts, err := netip.ParsePrefix(remoteTS)
	if err != nil {
		return err
	}
	cfg.Auth = ikev2.AuthSide{ID: &ikev2.ID{IDType: ikev2.IDFQDN, Data: []byte(id)}, PSK: []byte(strings.TrimSpace(string(key))),
		Suites: suites, Local: []ikev2.Selector{ikev2.PrefixSelector(lts)}, Remote: []ikev2.Selector{ikev2.PrefixSelector(rts)}}
	rand.Read(cfg.SPIi[:])
	var spi [4]byte
	rand.Read(spi[:])
	cfg.InSPI, cfg.Rand = binary.BigEndian.Uint32(spi[:])|0xc0000000, rand.Reader
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
	c := in.Child()
	r := result{IKE: in.Suite().String(), ESP: c.Suite.String(), NAT: marker, InSPI: fmt.Sprintf("%08x", c.InSPI), OutSPI: fmt.Sprintf("%08x", c.OutSPI)}
	for _, s := range c.TSi {
		r.TSi = append(r.TSi, s.StartAddr.String()+"-"+s.EndAddr.String())
	}
	for _, s := range c.TSr {
		r.TSr = append(r.TSr, s.StartAddr.String()+"-"+s.EndAddr.String())
	}
	if ping != "" {
		if !marker {
			return errors.New("--ping needs UDP encapsulation (strongSwan's encap = yes)")
		}
		if err := pingThrough(conn, to, c, netip.MustParseAddr(pingFrom), netip.MustParseAddr(ping)); err != nil {
			return err
		}
		r.Pinged = true
	}
	return json.NewEncoder(os.Stdout).Encode(r)
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
	icmp := []byte{8, 0, 0, 0, 0x47, 0x48, 0, 1, 'v', '2', 'd', 'i', 'a', 'l'}
	binary.BigEndian.PutUint16(icmp[2:], esp.Checksum(icmp, 0))
	buf := make([]byte, 2048)
	h := out.Headroom()
	esp.PutIPv4Header(buf[h:], src, dst, 1, 64, 1, len(icmp))
	n := copy(buf[h+esp.IPv4HeaderLen:], icmp) + esp.IPv4HeaderLen
	pkt, err := out.Seal(buf, n, esp.ProtoIPv4)
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
