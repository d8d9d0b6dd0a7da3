package dataplane

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"os"
	"slices"
	"syscall"
	"testing"
	"time"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED LOUDLY: needs root (SO_MARK, raw sockets); CI runs as root")
	}
}

// readAll reads batches from c until want datagrams arrived or a second
// passed, copying each out with its sender.
func readAll(t *testing.T, c BatchConn, want int) ([][]byte, []netip.AddrPort) {
	t.Helper()
	var got [][]byte
	var from []netip.AddrPort
	done := make(chan error, 1)
	go func() {
		slots := make([]Msg, 8)
		for len(got) < want {
			for i := range slots {
				slots[i].Buf = make([]byte, 2048)
			}
			n, err := c.ReadBatch(slots)
			if err != nil {
				done <- err
				return
			}
			for _, m := range slots[:n] {
				got = append(got, bytes.Clone(m.Buf))
				from = append(from, m.Addr)
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Second):
		c.Close()
		<-done
		t.Fatalf("read %d of %d datagrams", len(got), want)
	}
	return got, from
}

func batchOf(to netip.AddrPort, sizes ...int) []Msg {
	msgs := make([]Msg, len(sizes))
	for i, s := range sizes {
		b := make([]byte, s)
		for j := range b {
			b[j] = byte(i*7 + j)
		}
		msgs[i] = Msg{Buf: b, Addr: to}
	}
	return msgs
}

// TestUDPBatchGSO sends a batch that UDP GSO carries in a few system calls
// and checks that the receiver sees each datagram intact, in order.
func TestUDPBatchGSO(t *testing.T) {
	needRoot(t)
	lo := netip.MustParseAddr("127.0.0.1")
	a, err := ListenUDP(netip.AddrPortFrom(lo, 0), 0x4748)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := ListenUDP(netip.AddrPortFrom(lo, 0), 0x4748)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	to := b.(*udpConn).c.LocalAddr().(interface{ AddrPort() netip.AddrPort }).AddrPort()
	msgs := batchOf(to, 1000, 1000, 1000, 1000, 1000, 300, 1200, 64, 64)
	n, err := a.(BatchConn).WriteBatch(msgs)
	if err != nil || n != len(msgs) {
		t.Fatalf("sent %d of %d: %v", n, len(msgs), err)
	}
	if a.(*udpConn).tx.gsoOff {
		t.Fatal("the kernel refused UDP GSO on loopback")
	}
	got, from := readAll(t, b.(BatchConn), len(msgs))
	for i := range msgs {
		if !bytes.Equal(got[i], msgs[i].Buf) {
			t.Fatalf("datagram %d: %d bytes, want %d, or other content", i, len(got[i]), len(msgs[i].Buf))
		}
		if from[i].Addr() != lo || from[i].Port() == 0 {
			t.Fatalf("datagram %d from %v", i, from[i])
		}
	}
	// A message the kernel refuses is skipped and reported, the rest go.
	bad := append(batchOf(netip.AddrPortFrom(netip.MustParseAddr("::1"), 9), 10), batchOf(to, 20)...)
	n, err = a.(BatchConn).WriteBatch(bad)
	if n != 1 || err == nil {
		t.Fatalf("batch with an unsendable message: sent %d, err %v", n, err)
	}
	if got, _ := readAll(t, b.(BatchConn), 1); len(got[0]) != 20 {
		t.Fatalf("got %d bytes, want the 20-byte datagram", len(got[0]))
	}
}

// TestRawESPBatch sends ESP-shaped datagrams through the protocol 50
// socket and reads them back with the IP header skipped.
func TestRawESPBatch(t *testing.T) {
	needRoot(t)
	lo := netip.MustParseAddr("127.0.0.1")
	c, err := ListenRawESP(lo, 0x4748)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msgs := batchOf(netip.AddrPortFrom(lo, 0), 48, 1400, 100)
	n, err := c.(BatchConn).WriteBatch(msgs)
	if err != nil || n != len(msgs) {
		t.Fatalf("sent %d of %d: %v", n, len(msgs), err)
	}
	got, from := readAll(t, c.(BatchConn), len(msgs))
	for i := range msgs {
		if !bytes.Equal(got[i], msgs[i].Buf) || from[i].Addr() != lo {
			t.Fatalf("datagram %d: %d bytes from %v, want %d bytes from %v", i, len(got[i]), from[i], len(msgs[i].Buf), lo)
		}
	}
}

// TestBatchReadAfterClose ends with the socket's error, not an errno the
// inbound routine would count and retry.
func TestBatchReadAfterClose(t *testing.T) {
	needRoot(t)
	c, err := ListenUDP(netip.MustParseAddrPort("127.0.0.1:0"), 0x4748)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	_, err = c.(BatchConn).ReadBatch(make([]Msg, 1))
	var errno syscall.Errno
	if err == nil || errors.As(err, &errno) {
		t.Fatalf("read on a closed socket: %v", err)
	}
}

// TestWildcardSocketsSendFromTheSAAddress: sockets bound to 0.0.0.0 (several
// listen addresses) report the address each datagram came to and send
// from the address each message names, in batches (a GSO run never mixes
// sources) and one by one, on UDP and raw ESP.
func TestWildcardSocketsSendFromTheSAAddress(t *testing.T) {
	needRoot(t)
	addr := netip.MustParseAddr
	wild, err := ListenUDP(netip.AddrPortFrom(netip.IPv4Unspecified(), 0), 0x4748)
	if err != nil {
		t.Fatal(err)
	}
	defer wild.Close()
	port := wild.(*udpConn).c.LocalAddr().(*net.UDPAddr).AddrPort().Port()
	peer, err := ListenUDP(netip.AddrPortFrom(addr("127.0.0.9"), 0), 0x4748)
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	peerAt := peer.(*udpConn).c.LocalAddr().(*net.UDPAddr).AddrPort()

	if err := peer.WriteTo([]byte("to .2"), netip.AddrPortFrom(addr("127.0.0.2"), port)); err != nil {
		t.Fatal(err)
	}
	msgs := []Msg{{Buf: make([]byte, 64)}}
	if n, err := wild.(BatchConn).ReadBatch(msgs); err != nil || n != 1 || msgs[0].Src != addr("127.0.0.2") || msgs[0].Addr != peerAt {
		t.Fatalf("read: %d %v, to %v from %v", n, err, msgs[0].Src, msgs[0].Addr)
	}

	out := batchOf(peerAt, 200, 200, 200, 200)
	for i, src := range []string{"127.0.0.3", "127.0.0.3", "127.0.0.4", "127.0.0.4"} {
		out[i].Src = addr(src)
	}
	if n, err := wild.(BatchConn).WriteBatch(out); err != nil || n != 4 {
		t.Fatalf("write batch: %d %v", n, err)
	}
	if err := wild.(SrcConn).WriteFromTo([]byte("one"), addr("127.0.0.5"), peerAt); err != nil {
		t.Fatal(err)
	}
	got, from := readAll(t, peer.(BatchConn), 5)
	for i, want := range []string{"127.0.0.3", "127.0.0.3", "127.0.0.4", "127.0.0.4", "127.0.0.5"} {
		if from[i] != netip.AddrPortFrom(addr(want), port) {
			t.Errorf("datagram %d (%d bytes) came from %v, want %s:%d", i, len(got[i]), from[i], want, port)
		}
	}

	rawWild, err := ListenRawESP(netip.IPv4Unspecified(), 0x4748)
	if err != nil {
		t.Fatal(err)
	}
	defer rawWild.Close()
	rawPeer, err := ListenRawESP(addr("127.0.0.9"), 0x4748)
	if err != nil {
		t.Fatal(err)
	}
	defer rawPeer.Close()
	esp := []byte{0, 0, 0x12, 0x34, 0, 0, 0, 1, 'x'} // SPI, sequence number, a byte
	to := netip.AddrPortFrom(addr("127.0.0.9"), 0)
	if n, err := rawWild.(BatchConn).WriteBatch([]Msg{{Buf: esp, Addr: to, Src: addr("127.0.0.6")}}); err != nil || n != 1 {
		t.Fatalf("raw write batch: %d %v", n, err)
	}
	if err := rawWild.(SrcConn).WriteFromTo(esp, addr("127.0.0.7"), to); err != nil {
		t.Fatal(err)
	}
	_, rawFrom := readAll(t, rawPeer.(BatchConn), 2)
	if rawFrom[0].Addr() != addr("127.0.0.6") || rawFrom[1].Addr() != addr("127.0.0.7") {
		t.Fatalf("raw ESP came from %v", rawFrom)
	}
}

// BenchmarkUDPWriteBatch: a batch of 64 datagrams of 1400 bytes to a
// loopback peer, from a socket bound to its address (bound) and from one
// on 0.0.0.0 naming each source with IP_PKTINFO (wildcard): the cost of
// several listen addresses on the send path.
func BenchmarkUDPWriteBatch(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("SKIPPED LOUDLY: needs root (SO_MARK)")
	}
	lo := netip.MustParseAddr("127.0.0.1")
	for _, wild := range []bool{false, true} {
		b.Run(map[bool]string{false: "bound", true: "wildcard"}[wild], func(b *testing.B) {
			bind := lo
			if wild {
				bind = netip.IPv4Unspecified()
			}
			c, err := ListenUDP(netip.AddrPortFrom(bind, 0), 0x4748)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			sink, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				b.Fatal(err)
			}
			defer sink.Close()
			go func() { // drain, so the socket buffer never fills
				buf := make([]byte, 65536)
				for {
					if _, err := sink.Read(buf); err != nil {
						return
					}
				}
			}()
			msgs := batchOf(sink.LocalAddr().(*net.UDPAddr).AddrPort(), slices.Repeat([]int{1400}, 64)...)
			if wild {
				for i := range msgs {
					msgs[i].Src = lo
				}
			}
			b.SetBytes(64 * 1400)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.(BatchConn).WriteBatch(msgs); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
