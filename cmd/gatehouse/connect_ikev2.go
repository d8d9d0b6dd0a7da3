package main

import (
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/gatehouse/gatehouse/cmd/gatehouse/internal/raclient"
	"github.com/gatehouse/gatehouse/esp"
	"github.com/gatehouse/gatehouse/ike/clients"
	"github.com/gatehouse/gatehouse/ike/ikev2"
)

// What the client offers without --profile: the suites the built-in
// clients of Apple and Android take first.
var (
	v2IKE = []string{"aes256-sha256-modp2048", "aes256gcm16-prfsha256-curve25519", "aes256-sha256-ecp256"}
	v2ESP = []string{"aes256gcm16", "aes256-sha256"}
)

func ikev2Command() *cobra.Command {
	f := &connectFlags{}
	cmd := &cobra.Command{
		Use:   "ikev2 --server ADDR --ca CA --user U --password-file P | --psk-file F | --cert C --key K --ca CA",
		Short: "Dial an IKEv2 server as a road warrior, as the built-in Windows, Apple and Android clients do",
		Long: `Connect to an IKEv2 remote-access server (RFC 7296): IKE_SA_INIT, then
IKE_AUTH asking for an address. With --user, the user logs in by
EAP-MSCHAPv2 after the server has proved itself with a certificate that
--ca issued. Without --user, the machine logs in alone: by the preshared
key of --psk-file, or by the certificate of --cert and --key (the server's
is then checked against --ca).

Once connected it prints the address the server gave, sets it on the TUN
and routes the networks of the server's traffic selectors (and every
--route) into the tunnel. It stays until Ctrl-C (or --duration), then
deletes its IKE SA. DNS servers the server offers are printed, not
installed. No kernel IPsec module is needed.

When our address towards the server changes (without --local), the client
moves its IKE SA there with UPDATE_SA_ADDRESSES (MOBIKE, RFC 4555) and
sends its ESP from the new address; the server must speak MOBIKE too.

By default it offers AES-256 with SHA2-256 over MODP2048, AES-GCM over
Curve25519 and AES-256 with SHA2-256 over ECP256 for the IKE SA, and
AES-GCM-256 or AES-256 with SHA2-256 for ESP. --profile offers what a
built-in client offers instead:
  windows          Windows 10/11 as installed: MODP1024 only (AES-CBC with
                   SHA1, SHA2-256, SHA2-384); ESP AES-CBC with SHA-1
  windows-dh2048   Windows with NegotiateDH2048_AES256 = 1: AES-256 over
                   MODP2048 first, then its defaults
  apple            macOS and iOS: AES-256/SHA2-256 over MODP2048, ECP256;
                   ESP AES-256/SHA2-256, AES-GCM
  android          Android 12+: AES-GCM over Curve25519, AES-CBC/SHA2 over
                   MODP2048 and 3072; ESP AES-GCM, AES-256/SHA2-256
A server that refuses the legacy ones (MODP1024) refuses the windows
profile: that is what the profiles are for. Both Windows profiles, once
connected, ask for split-tunnel routes as Windows does, with a DHCPINFORM
through the tunnel, and log the answer ("routes from DHCP").

Load testing: --calls N opens N IKE SAs at once, each logging in as
--user and getting an address; only the first carries traffic. It prints
how long they took and their rate.

Files: the preshared key file, the private key and the password file must
not be readable by group or others. The password file holds the password
on its first line.

Exit status:
  0  connected, and hung up when asked
  1  other failure (no route, TUN, sockets, the connection dropped)
  2  bad command line
  4  IKE failed (certificate or key refused, no common proposal, server
     silent)
  5  the server refused the user (wrong password, no address left)`,
		Example: `  gatehouse connect ikev2 --server 203.0.113.1 --ca ca.pem --user alice \
      --password-file ~/.gatehouse-password
  gatehouse connect ikev2 --server 203.0.113.1 --psk-file phone.psk --profile android
  gatehouse connect ikev2 --server 203.0.113.1 --ca ca.pem --user alice \
      --password-file ~/.gatehouse-password --calls 1000 --duration 10s`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := f.ikev2Config()
			if err != nil {
				return err
			}
			return dial(cmd, f, cfg, func(out io.Writer, info raclient.Info, log *zap.Logger) {
				via := fmt.Sprintf("%v (ESP %s)", info.Server.Addr(), info.ESP)
				if info.NAT {
					via = fmt.Sprintf("%v (ESP %s in UDP: a NAT is in the way)", info.Server, info.ESP)
				}
				fmt.Fprintf(out, "connected: address %v, routes %v, via %s, IKEv2\n", info.Address, info.Routes, via)
				if len(info.DNS) > 0 {
					fmt.Fprintf(out, "DNS servers offered: %v (not installed)\n", info.DNS)
				}
				if n := len(info.Addresses); n > 1 {
					fmt.Fprintf(out, "calls: %d IKE SAs up in %v (%.0f calls/s)\n", n, info.Setup.Round(time.Millisecond), float64(n)/info.Setup.Seconds())
					log.Debug("call addresses", zap.Stringers("addresses", info.Addresses))
				}
			})
		},
	}
	fl := cmd.Flags()
	f.addCommon(fl, "user name for EAP-MSCHAPv2; without it the machine logs in alone by --psk-file or --cert", "gatehouse-v0")
	fl.StringSliceVar(&f.ike, "ike", v2IKE, "IKE SA suites to offer, in order (cipher-prf-group or cipher-integrity-group)")
	fl.StringSliceVar(&f.esp, "esp", v2ESP, "ESP suites to offer, in order")
	fl.StringVar(&f.profile, "profile", "", "offer what a built-in client offers: windows, windows-dh2048, apple or android (instead of --ike and --esp)")
	fl.IntVar(&f.calls, "calls", 1, "load testing: IKE SAs to open, all as --user (see above)")
	return cmd
}

// ikev2Config checks the flags of connect ikev2.
func (f *connectFlags) ikev2Config() (raclient.Config, error) {
	var c raclient.Config
	certs := f.certFile != "" || f.keyFile != ""
	switch {
	case f.serverText == "":
		return c, usage("--server is required (see --help)")
	case f.user != "" && (f.passwordFile == "" || len(f.caFiles) == 0):
		return c, usage("--user logs in by EAP-MSCHAPv2: it needs --password-file, and --ca to check the server's certificate first")
	case f.user != "" && (f.pskFile != "" || certs):
		return c, usage("--user logs in by EAP: leave out --psk-file, --cert and --key")
	case f.user == "" && f.pskFile == "" && !certs:
		return c, usage("give --user (EAP-MSCHAPv2), --psk-file, or --cert, --key and --ca (see --help)")
	case f.pskFile != "" && certs:
		return c, usage("give --psk-file or --cert/--key/--ca, not both")
	case certs && (f.certFile == "" || f.keyFile == "" || len(f.caFiles) == 0):
		return c, usage("--cert, --key and --ca go together")
	case f.user == "" && f.passwordFile != "":
		return c, usage("--password-file goes with --user")
	}
	if err := f.endpoints(&c); err != nil {
		return c, err
	}
	if err := f.machine(&c); err != nil {
		return c, err
	}
	if f.user != "" {
		if err := f.password(&c); err != nil {
			return c, err
		}
	}
	ikeOffers, espOffers := f.ike, f.esp
	if f.profile != "" {
		fam, ok := clients.V2ByName(f.profile)
		if !ok {
			return c, usage("--profile %q: choose windows, windows-dh2048, apple or android", f.profile)
		}
		if !slices.Equal(f.ike, v2IKE) || !slices.Equal(f.esp, v2ESP) {
			return c, usage("--profile sets the offers: leave out --ike and --esp")
		}
		ikeOffers, espOffers, c.VendorIDs, c.DHCPInform = fam.IKE, fam.ESP, fam.VendorIDs, fam.DHCPInform
	}
	for _, s := range ikeOffers {
		p, err := ikev2.ParseProposal(s)
		if err != nil {
			return c, usage("--ike: %v", err)
		}
		c.IKEv2 = append(c.IKEv2, p)
	}
	for _, s := range espOffers {
		su, err := esp.ParseSuite(s)
		if err != nil {
			return c, usage("--esp: %v", err)
		}
		c.ESP = append(c.ESP, su)
	}
	if err := f.local(&c); err != nil {
		return c, err
	}
	return c, nil
}
