package remote

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/gatehouse/gatehouse/core/dataplane"
	"github.com/gatehouse/gatehouse/core/pluginhost"
	"github.com/gatehouse/gatehouse/plugins/sdk"
)

// accounting sends RADIUS accounting (RFC 2866) for remote-access
// sessions through the plugin that serves the users: Start when a session
// is on the data path, Interim-Update every interim interval, Stop with
// its totals when it ends. Records queue for one sender goroutine, so the
// sessions' paths never wait for a RADIUS server.
type accounting struct {
	log     *zap.Logger
	plugins *pluginhost.Host
	interim time.Duration
	prefix  string // this run's random prefix for Acct-Session-Id
	queue   chan sdk.AccountRequest

	mu       sync.Mutex
	sessions map[uint64]*acctSession // by data path handle

	sent, failed, dropped atomic.Uint64
}

type acctSession struct {
	id      string
	user    string
	addr    netip.Addr
	peer    netip.AddrPort
	start   time.Time
	class   [][]byte
	interim time.Time // when the last Start or Interim-Update went
}

// acctQueue bounds the records waiting for the sender; past it they are
// counted and dropped, and the log says so.
const acctQueue = 4096

func newAccounting(log *zap.Logger, plugins *pluginhost.Host, interim time.Duration) *accounting {
	b := make([]byte, 4)
	rand.Read(b)
	return &accounting{log: log, plugins: plugins, interim: interim, prefix: strings.ToUpper(hex.EncodeToString(b)),
		queue: make(chan sdk.AccountRequest, acctQueue), sessions: map[uint64]*acctSession{}}
}

// start sends the session's Start; class is the Access-Accept's, echoed
// in every record (RFC 2865 section 5.25).
func (a *accounting) start(handle uint64, user string, addr netip.Addr, peer netip.AddrPort, since time.Time, class [][]byte) {
	as := &acctSession{id: fmt.Sprintf("%s-%08X", a.prefix, handle), user: user, addr: addr, peer: peer, start: since, class: class, interim: since}
	a.mu.Lock()
	a.sessions[handle] = as
	a.mu.Unlock()
	a.send(as.record(sdk.AcctStart, dataplane.L2TPCounters{}, time.Time{}, ""))
}

// idOf is a session's Acct-Session-Id ("" when unknown).
func (a *accounting) idOf(handle uint64) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if as := a.sessions[handle]; as != nil {
		return as.id
	}
	return ""
}

// stop sends the session's Stop with its totals; why is the reason the
// session ended, mapped to Acct-Terminate-Cause.
func (a *accounting) stop(handle uint64, c dataplane.L2TPCounters, why string) {
	a.mu.Lock()
	as := a.sessions[handle]
	delete(a.sessions, handle)
	a.mu.Unlock()
	if as == nil {
		return
	}
	a.send(as.record(sdk.AcctStop, c, time.Now(), why))
}

// tick sends the Interim-Updates that are due, with the counters of the
// session (by handle and address); the one-second tick calls it.
func (a *accounting) tick(now time.Time, counters func(handle uint64, addr netip.Addr) (dataplane.L2TPCounters, bool)) {
	if a.interim <= 0 {
		return
	}
	var due []*acctSession
	var handles []uint64
	a.mu.Lock()
	for h, as := range a.sessions {
		if now.Sub(as.interim) >= a.interim {
			as.interim = now
			due, handles = append(due, as), append(handles, h)
		}
	}
	a.mu.Unlock()
	for i, as := range due {
		if c, ok := counters(handles[i], as.addr); ok {
			a.send(as.record(sdk.AcctInterim, c, now, ""))
		}
	}
}

func (as *acctSession) record(status sdk.AcctStatus, c dataplane.L2TPCounters, now time.Time, why string) sdk.AccountRequest {
	r := sdk.AccountRequest{Status: status, SessionID: as.id, User: as.user, FramedAddress: as.addr, Peer: as.peer, Class: as.class,
		BytesIn: c.BytesIn, BytesOut: c.BytesOut, PacketsIn: c.PacketsIn, PacketsOut: c.PacketsOut}
	if !now.IsZero() {
		r.SessionTime = now.Sub(as.start)
	}
	if status == sdk.AcctStop {
		r.TerminateCause = terminateCause(why)
	}
	return r
}

// terminateCause maps why a session ended to RFC 2866 section 5.10.
func terminateCause(why string) uint32 {
	w := strings.ToLower(why)
	switch {
	case strings.Contains(w, "idle"):
		return 4 // Idle-Timeout
	case strings.Contains(w, "session timeout") || strings.Contains(w, "session-timeout"):
		return 5 // Session-Timeout
	case strings.Contains(w, "operator") || strings.Contains(w, "disconnect-request"):
		return 6 // Admin-Reset
	case strings.Contains(w, "peer terminated") || strings.Contains(w, "client hung up") || strings.Contains(w, "cdn from the peer") ||
		strings.Contains(w, "peer deleted"):
		return 1 // User-Request
	case strings.Contains(w, "stopping") || strings.Contains(w, "shutting down"):
		return 11 // NAS-Reboot
	case strings.Contains(w, "echo") || strings.Contains(w, "dead") || strings.Contains(w, "lost") || strings.Contains(w, "timeout") ||
		strings.Contains(w, "does not answer"):
		return 2 // Lost-Carrier
	}
	return 10 // NAS-Request
}

func (a *accounting) send(r sdk.AccountRequest) {
	select {
	case a.queue <- r:
	default:
		if n := a.dropped.Add(1); n&(n-1) == 0 { // log at 1, 2, 4, 8...
			a.log.Error("accounting queue full; records dropped", zap.Uint64("dropped", n))
		}
	}
}

// run sends queued records until ctx ends. Each gets the plugin's whole
// server list (the plugin's timeouts bound it); a record no server took
// is logged and counted.
func (a *accounting) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case r := <-a.queue:
			a.deliver(ctx, r)
		}
	}
}

func (a *accounting) deliver(ctx context.Context, r sdk.AccountRequest) {
	p, _, err := a.plugins.Authenticator(sdk.MethodPAP)
	if err == nil {
		c, cancel := context.WithTimeout(ctx, 30*time.Second)
		err = p.Account(c, r)
		cancel()
	}
	if err != nil {
		a.failed.Add(1)
		a.log.Warn("accounting record not delivered", zap.String("session", r.SessionID), zap.String("user", r.User),
			zap.Int("status", int(r.Status)), zap.Error(err))
		return
	}
	a.sent.Add(1)
	a.log.Debug("accounting record delivered", zap.String("session", r.SessionID), zap.Int("status", int(r.Status)))
}
