// Package pool leases client addresses for remote-access sessions: each
// address to one session at a time, never the pool's network, broadcast or
// gateway address, and static addresses (a user's fixed address from the
// user database or RADIUS) held in the same table so that nothing is handed
// out twice.
package pool

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
)

// Errors callers test.
var (
	ErrExhausted = errors.New("address pool exhausted")
	ErrInUse     = errors.New("address in use")
	ErrNotLeased = errors.New("address not leased")
)

// Pool is one subnet of client addresses. Safe for concurrent use.
type Pool struct {
	prefix  netip.Prefix
	gateway netip.Addr
	first   netip.Addr
	last    netip.Addr
	size    int

	mu     sync.Mutex
	leases map[netip.Addr]string // address -> owner (user)
	next   netip.Addr            // where the next search starts
	inPool int                   // leases inside the prefix
}

// New makes a pool of prefix (IPv4, /30 or larger). Its first usable
// address is the server's own (the gateway the clients see in IPCP).
func New(prefix netip.Prefix) (*Pool, error) {
	prefix = prefix.Masked()
	if !prefix.Addr().Is4() || prefix.Bits() > 30 {
		return nil, fmt.Errorf("pool %v: need an IPv4 prefix of /30 or larger", prefix)
	}
	gw := prefix.Addr().Next()
	hosts := 1<<(32-prefix.Bits()) - 2
	p := &Pool{prefix: prefix, gateway: gw, first: gw.Next(), size: hosts - 1, leases: map[netip.Addr]string{}}
	p.last = p.first
	for range p.size - 1 {
		p.last = p.last.Next()
	}
	p.next = p.first
	return p, nil
}

// Prefix is the pool's subnet.
func (p *Pool) Prefix() netip.Prefix { return p.prefix }

// Gateway is the server's address in the pool.
func (p *Pool) Gateway() netip.Addr { return p.gateway }

// Allocate leases an address to owner. A valid requested address (a
// static one) is leased if free, inside the pool or outside it; otherwise
// the pool picks the next free address after the last one it gave, so a
// released address is not reused at once.
func (p *Pool) Allocate(owner string, requested netip.Addr) (netip.Addr, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if requested.IsValid() && !requested.IsUnspecified() {
		requested = requested.Unmap()
		if requested == p.gateway || requested == p.prefix.Addr() || (p.prefix.Contains(requested) && requested.Compare(p.last) > 0) {
			return netip.Addr{}, fmt.Errorf("%w: %v is the pool's own address", ErrInUse, requested)
		}
		if who, taken := p.leases[requested]; taken {
			return netip.Addr{}, fmt.Errorf("%w: %v is leased to %s", ErrInUse, requested, who)
		}
		p.lease(requested, owner)
		return requested, nil
	}
	if p.inPool >= p.size {
		return netip.Addr{}, fmt.Errorf("%w: all %d addresses of %v are leased", ErrExhausted, p.size, p.prefix)
	}
	a := p.next
	for range p.size {
		if _, taken := p.leases[a]; !taken {
			p.lease(a, owner)
			p.next = p.after(a)
			return a, nil
		}
		a = p.after(a)
	}
	return netip.Addr{}, fmt.Errorf("%w: %v", ErrExhausted, p.prefix) // unreachable: inPool < size
}

func (p *Pool) after(a netip.Addr) netip.Addr {
	if a == p.last {
		return p.first
	}
	return a.Next()
}

func (p *Pool) lease(a netip.Addr, owner string) {
	p.leases[a] = owner
	if p.prefix.Contains(a) {
		p.inPool++
	}
}

// Release ends a lease.
func (p *Pool) Release(a netip.Addr) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	a = a.Unmap()
	if _, ok := p.leases[a]; !ok {
		return fmt.Errorf("%w: %v", ErrNotLeased, a)
	}
	delete(p.leases, a)
	if p.prefix.Contains(a) {
		p.inPool--
	}
	return nil
}

// Usage is the number of leased pool addresses and the pool's size
// (static addresses outside the prefix are not counted).
func (p *Pool) Usage() (used, size int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.inPool, p.size
}

// Owner returns who holds a.
func (p *Pool) Owner(a netip.Addr) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	o, ok := p.leases[a.Unmap()]
	return o, ok
}
