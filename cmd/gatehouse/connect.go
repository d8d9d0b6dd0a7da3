package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/gatehouse/gatehouse/auth/psk"
	"github.com/gatehouse/gatehouse/auth/secretfile"
	"github.com/gatehouse/gatehouse/auth/x509"
	"github.com/gatehouse/gatehouse/cmd/gatehouse/internal/raclient"
	"github.com/gatehouse/gatehouse/esp"
	"github.com/gatehouse/gatehouse/ike"
	"github.com/gatehouse/gatehouse/ike/clients"
	"github.com/gatehouse/gatehouse/ppp"
)

// Exit codes of `gatehouse connect` beyond the common ones.
const (
	exitIKE  = 4 // IKE failed (wrong preshared key, no common proposal, no answer)
	exitAuth = 5 // the server refused the user (wrong password, no address)
)

// What Windows 10/11 offer by default (ike/clients), so the client
// meets servers as the built-in client does.
var (
	windowsIKE = []string{"aes256-sha1-ecp384", "aes128-sha1-ecp256", "aes256-sha1-modp2048"}
	windowsESP = []string{"aes256-sha1", "aes128-sha1"}
)

type connectFlags struct {
	serverText, localText       string
	pskFile, user, passwordFile string
	certFile, keyFile           string
	caFiles, crlFiles           []string
	ike, esp, auth, routes      []string
	tun                         string
	mtu, table, calls, tunnels  int
	mark                        uint32
	setupTimeout, duration      time.Duration
	legacy, verbose, noIPsec    bool
	profile                     string
	keylog                      string
}

func connectCommand() *cobra.Command {
	f := &connectFlags{}
	connect := &cobra.Command{Use: "connect", Short: "Connect to a VPN server as a client"}
	l2tpCmd := &cobra.Command{
		Use:   "l2tp --server ADDR (--psk-file F | --cert C --key K --ca CA) --user U --password-file P",
		Short: "Dial an L2TP/IPsec server, as the built-in Windows client does",
		Long: `Connect to an L2TP/IPsec server: IKEv1 main mode with a preshared key
or a machine certificate, ESP in transport mode for L2TP (RFC 3193), an L2TP tunnel and call, and PPP
with the user's name and password. No kernel IPsec, L2TP or PPP module is
needed: the client runs all of it in user space, on a TUN device.

Once connected it prints the address the server gave, sets it on the TUN,
routes the server's inside address (and every --route) into the tunnel, and
stays until Ctrl-C (or --duration), then hangs up politely: PPP terminate,
L2TP disconnect, IKE delete. DNS servers the server offers are printed, not
installed.

By default it offers what Windows 10/11 offer: main mode AES-CBC with SHA1
over ECP384, ECP256 and MODP2048 (MODP1024 with --legacy), quick mode ESP
AES-CBC-256/128 with HMAC-SHA1.

--profile makes main mode offer exactly what a built-in client offers,
transform by transform, with its lifetimes and vendor IDs (docs/interop.md):
  windows          Windows 10/11: AES/SHA1 over ECP384, ECP256, MODP2048; 8 h
  windows-legacy   Windows 7 on older settings: 3DES/SHA1/MODP1024 only
  apple            macOS/iOS racoon: 14 transforms over DH14, DH5, DH2; 1 h
  android          Android up to 11: MODP1024 only (AES, 3DES, DES); 8 h
and quick mode offer the family's ESP suites (without MD5 and DES, which
Gatehouse does not have). A server without the matching interop plugin may
refuse the legacy ones: that is what the profiles are for.

PPP accepts MS-CHAPv2, CHAP-MD5 and PAP, in
that order of preference.

Load testing: --calls N opens N PPP sessions over --tunnels M L2TP tunnels
inside the one IPsec SA, as a concentrator with many users does. Each call
authenticates as --user and gets an address; only the first carries
traffic. It prints how long the calls took and their rate, and every call's
address with -v.

Machine certificate instead of a preshared key: --cert is our certificate
(PEM; intermediates after it are sent too), --key its RSA or ECDSA private
key, --ca the CA certificates that must have issued the server's (with
--crl for their revocation lists). The IKE method follows the key: RSA
signatures, or ECDSA on the key's curve. We identify by our certificate's
subject; the server must name its own certificate in its ID. "gatehouse pki"
makes a lab CA and certificates.

Without IPsec: --no-ipsec dials L2TP in clear on UDP 1701, with no IKE and
no ESP, as a Windows client with the ProhibitIpSec registry value does. The
server must allow it (remote_access.allow_cleartext_l2tp). The traffic and
the PPP login cross the network unencrypted: use it to tell an IPsec
problem from an L2TP or PPP one, not to work. --psk-file and the
certificate options are then not needed (and not allowed).

Files: the preshared key file, the private key and the password file must
not be readable by group or others. The password file holds the password on
its first line.

Exit status:
  0  connected, and hung up when asked
  1  other failure (no route, TUN, sockets, the connection dropped)
  2  bad command line
  4  IKE failed (wrong preshared key, certificate refused, no common
     proposal, server silent)
  5  the server refused the user (wrong password, no address left)`,
		Example: `  gatehouse connect l2tp --server 203.0.113.1 --psk-file /etc/gatehouse/l2tp.psk \
      --user alice --password-file ~/.gatehouse-password --route 10.1.0.0/16
  gatehouse connect l2tp --server 203.0.113.1 --cert laptop.pem --key laptop.key \
      --ca ca.pem --user alice --password-file ~/.gatehouse-password
  gatehouse connect l2tp --server 203.0.113.1 --no-ipsec --user alice \
      --password-file ~/.gatehouse-password`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runConnect(cmd, f) },
	}
	fl := l2tpCmd.Flags()
	f.addCommon(fl, "PPP user name; DOMAIN\\user is sent as given (required)", "gatehouse-c0")
	fl.StringSliceVar(&f.ike, "ike", windowsIKE, "main mode proposals to offer, in order (cipher-hash-group)")
	fl.StringSliceVar(&f.esp, "esp", windowsESP, "quick mode ESP proposals to offer, in order")
	fl.StringSliceVar(&f.auth, "ppp-auth", []string{"mschapv2", "chap", "pap"}, "PPP authentication the client accepts, in order of preference")
	fl.BoolVar(&f.legacy, "legacy", false, "also offer 3DES-SHA1-MODP1024 and 3DES-SHA1, as older Windows settings do")
	fl.StringVar(&f.profile, "profile", "", "offer what a built-in client offers: windows, windows-legacy, apple or android (instead of --ike, --esp, --legacy)")
	fl.IntVar(&f.calls, "calls", 1, "load testing: PPP sessions to open, all as --user (see above)")
	fl.IntVar(&f.tunnels, "tunnels", 1, "load testing: L2TP tunnels to spread --calls over")
	fl.BoolVar(&f.noIPsec, "no-ipsec", false, "dial L2TP in clear on UDP 1701, without IKE or ESP (see above; the server must allow it)")
	connect.AddCommand(l2tpCmd, ikev2Command())
	return connect
}

// addCommon registers the flags both protocols' clients take; user says
// what --user is, tun names the default TUN.
func (f *connectFlags) addCommon(fl *pflag.FlagSet, user, tun string) {
	fl.StringVar(&f.serverText, "server", "", "the server's address (required)")
	fl.StringVar(&f.localText, "local", "", "our address towards the server (default: chosen by the routing table)")
	fl.StringVar(&f.pskFile, "psk-file", "", "file with the IKE preshared key (mode 0600); or --cert, --key and --ca")
	fl.StringVar(&f.certFile, "cert", "", "our machine certificate (PEM), instead of --psk-file")
	fl.StringVar(&f.keyFile, "key", "", "the private key of --cert (mode 0600)")
	fl.StringSliceVar(&f.caFiles, "ca", nil, "CA certificate that issued the server's (repeatable)")
	fl.StringSliceVar(&f.crlFiles, "crl", nil, "CRL of a --ca (repeatable)")
	fl.StringVar(&f.user, "user", "", user)
	fl.StringVar(&f.passwordFile, "password-file", "", "file whose first line is the password (mode 0600)")
	fl.StringSliceVar(&f.routes, "route", nil, "prefix to send through the tunnel (repeatable), e.g. 10.1.0.0/16")
	fl.StringVar(&f.tun, "tun", tun, "TUN device to create")
	fl.IntVar(&f.mtu, "mtu", 1400, "TUN MTU (over L2TP, also the PPP MRU we ask for)")
	fl.IntVar(&f.table, "table", 4749, "routing table for the tunnel's routes")
	fl.Uint32Var(&f.mark, "mark", 0x474a, "fwmark of our own outer packets, so they bypass the tunnel")
	fl.DurationVar(&f.setupTimeout, "setup-timeout", 30*time.Second, "give up if not connected by then")
	fl.DurationVar(&f.duration, "duration", 0, "hang up after this long (0: stay until Ctrl-C)")
	fl.BoolVarP(&f.verbose, "verbose", "v", false, "log each protocol step")
	fl.StringVar(&f.keylog, "keylog", "", "debugging: append each ESP SA's keys to this file (mode 0600) so tshark can decrypt a capture; anyone with it can read the traffic")
}

func (f *connectFlags) config() (raclient.Config, error) {
	var c raclient.Config
	if f.serverText == "" || f.user == "" || f.passwordFile == "" {
		return c, usage("--server, --user and --password-file are required (see --help)")
	}
	certs := f.certFile != "" || f.keyFile != "" || len(f.caFiles) > 0
	switch {
	case f.noIPsec && (f.pskFile != "" || certs || f.profile != "" || f.keylog != ""):
		return c, usage("--no-ipsec dials without IPsec: leave out --psk-file, --cert, --key, --ca, --profile and --keylog")
	case f.noIPsec:
	case f.pskFile != "" && certs:
		return c, usage("give --psk-file or --cert/--key/--ca, not both")
	case f.pskFile == "" && !certs:
		return c, usage("the machine needs --psk-file, or --cert, --key and --ca (see --help)")
	case certs && (f.certFile == "" || f.keyFile == "" || len(f.caFiles) == 0):
		return c, usage("--cert, --key and --ca go together")
	}
	if err := f.endpoints(&c); err != nil {
		return c, err
	}
	c.NoIPsec = f.noIPsec
	if !f.noIPsec { // without IKE nothing authenticates the machine
		if err := f.machine(&c); err != nil {
			return c, err
		}
	}
	if err := f.password(&c); err != nil {
		return c, err
	}
	ikeOffers, espOffers := f.ike, f.esp
	if f.profile != "" {
		fam, ok := clients.ByName(f.profile)
		if !ok {
			return c, usage("--profile %q: choose windows, windows-legacy, apple or android", f.profile)
		}
		if f.legacy || !slices.Equal(f.ike, windowsIKE) || !slices.Equal(f.esp, windowsESP) {
			return c, usage("--profile sets the offers: leave out --ike, --esp and --legacy")
		}
		c.Profile = fam
		// The family's own suites, legacy included: the server decides.
		ikeOffers, espOffers, f.legacy = nil, fam.ESP, true
	}
	if f.legacy {
		ikeOffers, espOffers = append(ikeOffers, "3des-sha1-modp1024"), append(espOffers, "3des-sha1")
	}
	for _, s := range ikeOffers {
		p, err := ike.ParseProposal(s)
		if err != nil {
			return c, usage("--ike: %v", err)
		}
		if p.Legacy() && !f.legacy {
			return c, usage("--ike %s uses a legacy algorithm; add --legacy to offer it", s)
		}
		c.IKE = append(c.IKE, p)
	}
	for _, s := range espOffers {
		su, err := esp.ParseSuite(s)
		if err == nil {
			err = esp.CheckIKEv1(su)
		}
		if err != nil {
			return c, usage("--esp: %v", err)
		}
		c.ESP = append(c.ESP, su)
	}
	for _, n := range f.auth {
		a, err := ppp.ParseAuthProto(n)
		if err != nil {
			return c, usage("--ppp-auth %v", err)
		}
		c.PPPAuth = append(c.PPPAuth, a)
	}
	if err := f.local(&c); err != nil {
		return c, err
	}
	if f.tunnels < 1 || f.tunnels > min(f.calls, raclient.MaxTunnels) {
		return c, usage("--tunnels %d: allowed 1 to --calls (%d), at most %d", f.tunnels, f.calls, raclient.MaxTunnels)
	}
	c.Tunnels = f.tunnels
	return c, nil
}

func usage(format string, a ...any) error { return cliError{exitUsage, fmt.Errorf(format, a...)} }

// endpoints reads --server and --local.
func (f *connectFlags) endpoints(c *raclient.Config) error {
	var err error
	if c.Server, err = netip.ParseAddr(f.serverText); err != nil || !c.Server.Is4() {
		return usage("--server %q: an IPv4 address is needed", f.serverText)
	}
	if f.localText != "" {
		if c.Local, err = netip.ParseAddr(f.localText); err != nil || !c.Local.Is4() {
			return usage("--local %q: an IPv4 address is needed", f.localText)
		}
	}
	return nil
}

// machine reads the preshared key, or our certificate and the CAs.
func (f *connectFlags) machine(c *raclient.Config) error {
	if f.pskFile != "" {
		key, err := psk.ReadKeyFile(f.pskFile)
		if err != nil {
			return usage("--psk-file: %v", err)
		}
		c.PSK = key.Bytes()
		return nil
	}
	var err error
	if f.certFile != "" {
		if c.Cert, err = x509.LoadIdentity(f.certFile, f.keyFile); err != nil {
			return usage("--cert/--key: %v", err)
		}
	}
	if len(f.caFiles) > 0 {
		if c.CAs, err = x509.Load(f.caFiles, f.crlFiles); err != nil {
			return usage("--ca/--crl: %v", err)
		}
	}
	return nil
}

// password reads --user's password: the first line of --password-file.
func (f *connectFlags) password(c *raclient.Config) error {
	pw, err := secretfile.Read(f.passwordFile)
	if err != nil {
		return usage("--password-file: %v", err)
	}
	c.Password, _, _ = strings.Cut(strings.TrimRight(string(pw), "\r\n"), "\n")
	c.Password = strings.TrimRight(c.Password, "\r")
	if c.Password == "" {
		return usage("--password-file %s: the first line is empty", f.passwordFile)
	}
	c.User = f.user
	return nil
}

// local reads what happens on this host: routes, the TUN, the timeouts
// and the load.
func (f *connectFlags) local(c *raclient.Config) error {
	for _, r := range f.routes {
		p, err := netip.ParsePrefix(r)
		if err != nil || !p.Addr().Is4() {
			return usage("--route %q: an IPv4 prefix is needed, e.g. 10.1.0.0/16", r)
		}
		c.Routes = append(c.Routes, p.Masked())
	}
	if f.mtu < 576 || f.mtu > 1500 {
		return usage("--mtu %d: allowed 576 to 1500", f.mtu)
	}
	if f.calls < 1 || f.calls > raclient.MaxCalls {
		return usage("--calls %d: allowed 1 to %d", f.calls, raclient.MaxCalls)
	}
	c.TUN, c.MTU, c.Table, c.Mark, c.Timeout = f.tun, f.mtu, f.table, int(f.mark), f.setupTimeout
	c.Calls = f.calls
	return nil
}

func runConnect(cmd *cobra.Command, f *connectFlags) error {
	cfg, err := f.config()
	if err != nil {
		return err
	}
	return dial(cmd, f, cfg, func(out io.Writer, info raclient.Info, log *zap.Logger) {
		via := fmt.Sprintf("%v (ESP %s)", info.Server.Addr(), info.ESP)
		switch {
		case cfg.NoIPsec:
			via = fmt.Sprintf("%v (L2TP without IPsec: nothing is encrypted)", info.Server)
		case info.NAT:
			via = fmt.Sprintf("%v (ESP %s in UDP: a NAT is in the way)", info.Server, info.ESP)
		}
		fmt.Fprintf(out, "connected: address %v, server inside %v, via %s, PPP %v\n", info.Address, info.Gateway, via, info.Auth)
		if len(info.DNS) > 0 {
			fmt.Fprintf(out, "DNS servers offered: %v (not installed)\n", info.DNS)
		}
		if n := len(info.Addresses); n > 1 {
			fmt.Fprintf(out, "calls: %d up over %d tunnels in %v after the IPsec SA (%.0f calls/s); %v in all\n",
				n, cfg.Tunnels, info.CallSetup.Round(time.Millisecond), float64(n)/info.CallSetup.Seconds(), info.Setup.Round(time.Millisecond))
			log.Debug("call addresses", zap.Stringers("addresses", info.Addresses))
		}
	})
}

// dial connects with cfg, prints the connection (connected), and stays
// until Ctrl-C, --duration or the connection's end; then it hangs up and
// prints the totals.
func dial(cmd *cobra.Command, f *connectFlags, cfg raclient.Config, connected func(io.Writer, raclient.Info, *zap.Logger)) error {
	level := zapcore.WarnLevel
	if f.verbose {
		level = zapcore.DebugLevel
	}
	zc := zap.NewDevelopmentConfig()
	zc.Level = zap.NewAtomicLevelAt(level)
	zc.DisableStacktrace = true
	log, err := zc.Build()
	if err != nil {
		return err
	}
	defer log.Sync()
	cfg.Log = log
	if f.keylog != "" {
		kl, err := os.OpenFile(f.keylog, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return cliError{exitUsage, fmt.Errorf("--keylog: %w", err)}
		}
		defer kl.Close()
		cfg.KeyLog = kl
		log.Warn("writing ESP keys to the key log: anyone who reads it can decrypt this connection", zap.String("file", f.keylog))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	out := cmd.OutOrStdout()
	fmt.Fprintf(out, "connecting to %v as %s...\n", cfg.Server, cfg.User)
	conn, err := raclient.Dial(ctx, cfg)
	if err != nil {
		return connectError(err)
	}
	connected(out, conn.Info(), log)
	var timeout <-chan time.Time
	if f.duration > 0 {
		timeout = time.After(f.duration)
	}
	var dropped error
	select {
	case <-ctx.Done():
	case <-timeout:
	case <-conn.Done():
		dropped = conn.Err()
	}
	c := conn.Counters()
	conn.Close()
	fmt.Fprintf(out, "disconnected: %d bytes in (%d packets), %d bytes out (%d packets)\n", c.BytesIn, c.PacketsIn, c.BytesOut, c.PacketsOut)
	if dropped != nil {
		return fmt.Errorf("the connection dropped: %w", dropped)
	}
	return nil
}

// connectError maps a failure to its exit status.
func connectError(err error) error {
	switch {
	case errors.Is(err, raclient.ErrIKE):
		return cliError{exitIKE, err}
	case errors.Is(err, raclient.ErrRefused):
		return cliError{exitAuth, err}
	}
	return cliError{exitFailure, err}
}
