package remote

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/gatehouse/gatehouse/auth/radius"
	"github.com/gatehouse/gatehouse/core/config"
	"github.com/gatehouse/gatehouse/core/dataplane"
)

// Disconnect-Requests (RFC 5176) are taken by the core, not the radius
// plugin: the core owns the sessions, and the plugin interface has no way
// back to the core. So the core reads the servers' shared secrets for
// this one purpose (docs/radius.md).

// startDisconnects listens on disconnect_listen until ctx ends. Requests
// are taken only from the configured servers' hosts, each under its own
// secret.
func (r *Access) startDisconnects(ctx context.Context, rc *config.Radius) error {
	secrets := map[netip.Addr][]byte{}
	for _, s := range rc.Servers {
		ap, err := netip.ParseAddrPort(s.Address) // host:port since validation
		if err != nil {
			return err
		}
		b, err := radius.ReadSecretFile(s.SecretFile)
		if err != nil {
			return fmt.Errorf("disconnect_listen: %w", err)
		}
		secrets[ap.Addr().Unmap()] = b
	}
	conn, err := net.ListenPacket("udp", rc.DisconnectListen)
	if err != nil {
		return fmt.Errorf("disconnect_listen %s: %w", rc.DisconnectListen, err)
	}
	go func() {
		<-ctx.Done()
		conn.Close()
	}()
	go r.serveDisconnects(conn, secrets, rc.DisconnectWindow.Duration)
	r.log.Info("taking RADIUS Disconnect-Requests", zap.String("listen", rc.DisconnectListen), zap.Int("clients", len(secrets)))
	return nil
}

// maxRecentDisconnects bounds the requests remembered against replays.
const maxRecentDisconnects = 4096

func (r *Access) serveDisconnects(conn net.PacketConn, secrets map[netip.Addr][]byte, window time.Duration) {
	buf := make([]byte, 4096)
	replays := radius.NewReplays(window, maxRecentDisconnects)
	for {
		n, from, err := conn.ReadFrom(buf)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				r.log.Error("Disconnect-Request listener stopped", zap.Error(err))
			}
			return
		}
		src, _ := netip.AddrFromSlice(from.(*net.UDPAddr).IP)
		secret, ok := secrets[src.Unmap()]
		if !ok {
			r.log.Warn("Disconnect-Request from a host that is not a configured RADIUS server dropped", zap.Stringer("from", from))
			continue
		}
		now := time.Now()
		d, err := radius.ReadDisconnect(buf[:n], secret, now, window)
		if err != nil {
			r.log.Warn("Disconnect-Request refused", zap.Stringer("from", from), zap.Error(err))
			continue
		}
		if again, err := replays.Seen(d, from.String(), now); err != nil {
			r.log.Warn("Disconnect-Request refused", zap.Stringer("from", from), zap.Error(err))
			continue
		} else if again != nil {
			conn.WriteTo(again, from) // a retransmission: the same answer, nothing done twice
			continue
		}
		cause, ended := r.disconnectFor(d, from.String())
		reply, err := d.Reply(cause)
		if err == nil {
			replays.Answered(d, from.String(), reply, now)
			_, err = conn.WriteTo(reply, from)
		}
		if err != nil {
			r.log.Warn("answering a Disconnect-Request", zap.Stringer("from", from), zap.Error(err))
		}
		r.log.Info("Disconnect-Request", zap.Stringer("from", from), zap.String("user", d.User), zap.String("session", d.SessionID),
			zap.Stringer("address", d.FramedAddress), zap.Int("ended", ended), zap.Uint32("nak_cause", cause))
	}
}

// disconnectFor ends the sessions a request names: all it says must
// match. It returns the NAK's Error-Cause (0: ACK) and how many ended.
func (r *Access) disconnectFor(d *radius.DisconnectRequest, from string) (uint32, int) {
	if d.IsCoA() {
		return radius.CauseUnsupportedService, 0
	}
	if d.Empty() {
		return radius.CauseMissingAttribute, 0
	}
	var hit []*dataplane.L2TPSession
	for _, s := range r.table.All() {
		if (d.User == "" || strings.EqualFold(s.User, d.User)) && (!d.FramedAddress.IsValid() || s.Client == d.FramedAddress) &&
			(d.SessionID == "" || (r.acct != nil && r.acct.idOf(s.Handle) == d.SessionID)) {
			hit = append(hit, s)
		}
	}
	why := "disconnected by a RADIUS Disconnect-Request from " + from
	for _, s := range hit {
		r.hangUp(s, why)
	}
	ended := len(hit) + len(r.endClients(func(c *client) bool {
		return (d.User == "" || strings.EqualFold(c.user, d.User)) && (!d.FramedAddress.IsValid() || c.addr == d.FramedAddress) &&
			(d.SessionID == "" || (r.acct != nil && r.acct.idOf(c.handle) == d.SessionID))
	}, func(*client) string { return why }))
	if ended == 0 {
		return radius.CauseSessionContextNotFound, 0
	}
	return 0, ended
}
