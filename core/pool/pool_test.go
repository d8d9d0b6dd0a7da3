package pool

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"
)

func TestPoolLeasesEachAddressOnce(t *testing.T) {
	p, err := New(netip.MustParsePrefix("10.8.0.0/29"))
	if err != nil {
		t.Fatal(err)
	}
	if p.Gateway() != netip.MustParseAddr("10.8.0.1") {
		t.Fatalf("gateway %v", p.Gateway())
	}
	// .2 to .6: five addresses; .0, .1 and .7 are never handed out.
	seen := map[netip.Addr]bool{}
	for i := range 5 {
		a, err := p.Allocate(fmt.Sprint("u", i), netip.Addr{})
		if err != nil {
			t.Fatal(err)
		}
		if seen[a] || !p.Prefix().Contains(a) || a == p.Gateway() || a.String() == "10.8.0.7" {
			t.Fatalf("handed out %v", a)
		}
		seen[a] = true
	}
	if _, err := p.Allocate("late", netip.Addr{}); !errors.Is(err, ErrExhausted) {
		t.Fatalf("sixth lease: %v", err)
	}
	if used, size := p.Usage(); used != 5 || size != 5 {
		t.Fatalf("usage %d/%d", used, size)
	}
	// Released addresses come back, but not the one just freed first.
	if err := p.Release(netip.MustParseAddr("10.8.0.3")); err != nil {
		t.Fatal(err)
	}
	if err := p.Release(netip.MustParseAddr("10.8.0.3")); !errors.Is(err, ErrNotLeased) {
		t.Fatalf("double release: %v", err)
	}
	a, _ := p.Allocate("again", netip.Addr{})
	if a.String() != "10.8.0.3" {
		t.Fatalf("got %v", a)
	}
}

func TestPoolStaticAddresses(t *testing.T) {
	p, _ := New(netip.MustParsePrefix("10.8.0.0/24"))
	inside, outside := netip.MustParseAddr("10.8.0.50"), netip.MustParseAddr("10.9.0.7")
	for _, a := range []netip.Addr{inside, outside} {
		got, err := p.Allocate("static", a)
		if err != nil || got != a {
			t.Fatalf("%v: %v %v", a, got, err)
		}
		if _, err := p.Allocate("other", a); !errors.Is(err, ErrInUse) {
			t.Fatalf("%v twice: %v", a, err)
		}
	}
	for _, a := range []string{"10.8.0.1", "10.8.0.0", "10.8.0.255"} {
		if _, err := p.Allocate("x", netip.MustParseAddr(a)); !errors.Is(err, ErrInUse) {
			t.Errorf("%s: %v", a, err)
		}
	}
	// The pool never picks a static address someone holds.
	for range 252 {
		a, err := p.Allocate("dyn", netip.Addr{})
		if err != nil {
			t.Fatal(err)
		}
		if a == inside {
			t.Fatal("static address handed out again")
		}
	}
	if used, _ := p.Usage(); used != 253 {
		t.Fatalf("used %d", used)
	}
}

func TestPoolConcurrent(t *testing.T) {
	p, _ := New(netip.MustParsePrefix("10.8.0.0/22"))
	var mu sync.Mutex
	seen := map[netip.Addr]bool{}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				a, err := p.Allocate(fmt.Sprint(g), netip.Addr{})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if seen[a] {
					t.Errorf("%v twice", a)
				}
				seen[a] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

func TestPoolRejectsBadPrefixes(t *testing.T) {
	for _, s := range []string{"10.8.0.0/31", "10.8.0.0/32", "2001:db8::/64"} {
		if _, err := New(netip.MustParsePrefix(s)); err == nil {
			t.Errorf("%s accepted", s)
		}
	}
}
