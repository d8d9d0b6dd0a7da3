// Command clearl2tp sends one L2TP SCCRQ in clear, outside IPsec, from
// UDP port 1701 to a server's port 1701, as a client that skips IPsec
// would, and says whether anything came back within --wait.
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/gatehouse/gatehouse/l2tp"
)

func main() {
	to := flag.String("to", "192.0.2.1:1701", "the server")
	wait := flag.Duration("wait", 3*time.Second, "how long to wait for an answer")
	flag.Parse()
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "clearl2tp:", err)
		os.Exit(1)
	}
	dst, err := net.ResolveUDPAddr("udp4", *to)
	if err != nil {
		fail(err)
	}
	c, err := net.ListenUDP("udp4", &net.UDPAddr{Port: l2tp.Port})
	if err != nil {
		fail(err)
	}
	defer c.Close()
	// The LAC's first message, as a real one sends it (l2tp builds it).
	var sccrq []byte
	t := l2tp.NewTunnel(l2tp.Config{Role: l2tp.LAC, HostName: "clear", Send: func(b []byte) { sccrq = append([]byte(nil), b...) }}, 0x4242)
	t.Start(time.Now())
	if sccrq == nil {
		fail(fmt.Errorf("no SCCRQ built"))
	}
	if _, err := c.WriteToUDP(sccrq, dst); err != nil {
		fail(err)
	}
	c.SetReadDeadline(time.Now().Add(*wait))
	buf := make([]byte, 2048)
	n, from, err := c.ReadFromUDP(buf)
	if err != nil {
		fmt.Printf("sent an SCCRQ in clear: no answer in %v\n", *wait)
		return
	}
	fmt.Printf("sent an SCCRQ in clear: answered by %v with %d bytes\n", from, n)
}
