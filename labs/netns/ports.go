package netns

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"testing"
)

// freePort finds a port free on ip for both TCP and UDP, for a daemon the
// test starts itself (a KDC, FreeRADIUS) and that binds by number. It
// comes from below the kernel's ephemeral range, where no outgoing
// connection and no bind to port 0 can take it between our check and the
// daemon's bind; ports already handed out by this process are not
// handed out again.
func freePort(t testing.TB, ip string) int {
	t.Helper()
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		fmt.Sscan(string(b), &low)
	}
	if low <= 2048 {
		t.Fatalf("the ephemeral port range starts at %d: no room below it for the lab daemons' ports", low)
	}
	for range 200 {
		port := 1024 + rand.IntN(low-1024)
		if !takePort(port) {
			continue
		}
		addr := net.JoinHostPort(ip, fmt.Sprint(port))
		l, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		c, err := net.ListenPacket("udp", addr)
		l.Close()
		if err != nil {
			continue
		}
		c.Close()
		return port
	}
	t.Fatalf("no free port on %s below %d after 200 tries", ip, low)
	return 0
}

// taken are the ports freePort handed out in this process.
var taken struct {
	sync.Mutex
	ports map[int]bool
}

func takePort(port int) bool {
	taken.Lock()
	defer taken.Unlock()
	if taken.ports == nil {
		taken.ports = map[int]bool{}
	}
	if taken.ports[port] {
		return false
	}
	taken.ports[port] = true
	return true
}
