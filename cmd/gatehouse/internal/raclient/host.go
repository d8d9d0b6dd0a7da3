package raclient

import (
	"bytes"
	"errors"
	"net/netip"
	"time"

	"go.uber.org/zap"

	"github.com/gatehouse/gatehouse/core/sad"
	"github.com/gatehouse/gatehouse/esp"
	"github.com/gatehouse/gatehouse/ike"
)

// host is the IKE engine's view of the client. Its calls come with the
// engine's lock held; events go to the loop through a channel.
type host Conn

func (h *host) Send(b []byte, local, remote netip.AddrPort) error {
	if local.Port() == esp.NATTPort {
		// RFC 3948 section 2.2: IKE on 4500 starts with the non-ESP marker.
		return h.udp.WriteTo(append(make([]byte, 4, 4+len(b)), b...), remote)
	}
	return h.ike.WriteTo(b, remote)
}

func (h *host) SendKeepalive(_, remote netip.AddrPort) error {
	return h.udp.WriteTo([]byte{0xff}, remote) // RFC 3948 section 2.3
}

func (h *host) PSK(*ike.PeerConfig, netip.Addr, *ike.ID) ([]byte, error) {
	if len(h.cfg.PSK) == 0 {
		return nil, errors.New("no preshared key")
	}
	return bytes.Clone(h.cfg.PSK), nil // the engine zeroes what it is given
}

var errNoCert = errors.New("no certificate configured")

func (h *host) LocalCredentials(*ike.PeerConfig, uint16, [][]byte) (*ike.LocalCredentials, error) {
	if h.cfg.Cert == nil {
		return nil, errNoCert
	}
	lc := &ike.LocalCredentials{Chain: h.cfg.Cert.DER(), ID: &ike.ID{IDType: ike.IDDERASN1DN, Data: h.cfg.Cert.Chain[0].RawSubject}}
	if h.cfg.CAs != nil {
		lc.CANames = h.cfg.CAs.CANames()
	}
	return lc, nil
}

func (h *host) Sign(_ *ike.PeerConfig, method uint16, hash []byte) ([]byte, error) {
	if h.cfg.Cert == nil {
		return nil, errNoCert
	}
	return ike.SignHash(h.cfg.Cert.Key, method, hash)
}

// VerifyPeer checks the server's certificate against our CAs, and that
// its ID names it.
func (h *host) VerifyPeer(_ *ike.PeerConfig, _ uint16, chain [][]byte, id *ike.ID) (*ike.PeerCredentials, error) {
	if h.cfg.CAs == nil {
		return nil, errors.New("no CA configured to check the server's certificate")
	}
	v, err := h.cfg.CAs.VerifyPeer(chain, id, time.Now())
	if err != nil {
		return nil, err
	}
	return &ike.PeerCredentials{PublicKey: v.Leaf.PublicKey, Subject: v.Subject()}, nil
}

func (h *host) AllocSPI() (uint32, error) { return h.db.NewSPI() }

func (h *host) meta(c *ike.ChildSA, rule string) sad.Meta {
	return sad.Meta{Name: peerName, Rule: rule, Mode: sad.Transport, Local: c.Local, Peer: c.Remote, UDPEncap: c.UDP, NATOA: c.NATOA}
}

func espConfig(c *ike.ChildSA, spi uint32, enc, integ []byte) esp.Config {
	return esp.Config{SPI: spi, Suite: c.Suite, EncKey: enc, IntegKey: integ,
		Limits: esp.Limits{HardTime: c.Lifetime, HardBytes: c.LifeKB * 1024}}
}

func (h *host) InstallInbound(c *ike.ChildSA) error {
	if h.v2 != nil {
		return h.installV2Child(c, true)
	}
	in, err := esp.NewInbound(espConfig(c, c.InSPI, c.InEnc, c.InInteg))
	if err != nil {
		return err
	}
	return h.db.AddInbound(&sad.InSA{Meta: h.meta(c, ruleIn), ESP: in})
}

func (h *host) InstallOutbound(c *ike.ChildSA) error {
	if h.v2 != nil {
		return h.installV2Child(c, false)
	}
	out, err := esp.NewOutbound(espConfig(c, c.OutSPI, c.OutEnc, c.OutInteg))
	if err != nil {
		return err
	}
	h.db.SetOutbound(outKey(c), &sad.OutSA{Meta: h.meta(c, ruleOut), ESP: out})
	return nil
}

func (h *host) DeleteChild(c *ike.ChildSA) {
	h.db.RemoveInbound(c.InSPI)
	if h.v2 != nil {
		h.db.RemoveOutbound(v2OutKey(c), c.OutSPI)
		return
	}
	h.db.RemoveOutbound(outKey(c), c.OutSPI)
}

// logKeys writes a new child's keys to the key log.
func (h *host) logKeys(c *ike.ChildSA) {
	if h.cfg.KeyLog == nil || c == nil {
		return
	}
	if err := ike.WriteKeyLog(h.cfg.KeyLog, c); err != nil {
		h.log.Warn("key log not written", zap.Error(err))
	}
}

func (h *host) Event(e ike.Event) {
	if e.ID == ike.EventChildUp {
		h.logKeys(e.Child)
	}
	if e.ID == ike.EventNegotiationErr {
		h.log.Warn(e.Message, zap.String("reason", e.Reason))
	} else {
		h.log.Info(e.Message)
	}
	select {
	case h.events <- e:
	default:
	}
}

// errNoGSS: the remote-access client authenticates with a preshared key
// or a certificate; a server that picks Kerberos gets this.
var errNoGSS = errors.New("gatehouse connect does not do Kerberos; use --psk-file or --cert")

func (h *host) GSSStep(*ike.PeerConfig, *ike.GSSContext, []byte) ([]byte, error) {
	return nil, errNoGSS
}
func (h *host) GSSWrap(*ike.PeerConfig, *ike.GSSContext, []byte) ([]byte, error) {
	return nil, errNoGSS
}
func (h *host) GSSUnwrap(*ike.PeerConfig, *ike.GSSContext, []byte) ([]byte, error) {
	return nil, errNoGSS
}
func (h *host) GSSRelease(*ike.PeerConfig, *ike.GSSContext) {}
