package main

import (
	"crypto/x509"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	ghx509 "github.com/gatehouse/gatehouse/auth/x509"
	"github.com/gatehouse/gatehouse/auth/x509/pki"
)

type pkiFlags struct {
	out, name, org, key string
	caCert, caKey       string
	// days per command: cobra sets a flag's variable to its default when
	// the flag is defined, so one shared variable would take the last
	// command's default.
	caDays, issueDays, crlDays int
	start                      string
	ips, dns, emails           []string
	revoke                     []string
	crlFile                    string
}

func pkiCommand() *cobra.Command {
	f := &pkiFlags{}
	root := &cobra.Command{
		Use:   "pki",
		Short: "Make a lab CA, gateway and client certificates, and CRLs",
		Long: `Make what IKE certificate authentication needs, for a lab or a small site:
a CA, certificates for gateways and clients, and revocation lists. Keys are
written as PKCS #8 PEM with mode 0600, certificates as PEM; no file is ever
overwritten. A site that has its own CA does not need this.

Gatehouse identifies a peer by its certificate's subject DN (or by a SAN
that matches the peer's ID payload: --ip, --dns, --email), and signs with
RSA or with ECDSA on the key's curve; both gateways of a tunnel must use
the same kind of key, since IKEv1 negotiates one method for both.`,
		Example: `  gatehouse pki ca --out /etc/gatehouse/pki --name "Example VPN CA"
  gatehouse pki issue --ca /etc/gatehouse/pki/ca.pem --ca-key /etc/gatehouse/pki/ca.key \
      --name gw-a.example.net --ip 203.0.113.1 --dns gw-a.example.net --out /etc/gatehouse/pki/gw-a
  gatehouse pki crl --ca /etc/gatehouse/pki/ca.pem --ca-key /etc/gatehouse/pki/ca.key \
      --revoke /etc/gatehouse/pki/laptop7.pem --out /etc/gatehouse/pki/crl.pem`,
	}
	ca := &cobra.Command{
		Use:   "ca --out DIR --name NAME",
		Short: "Make a self-signed CA: DIR/ca.pem and DIR/ca.key",
		Long: `Make a root CA for signing gateway and client certificates. It writes
DIR/ca.pem (give it to every gateway and client as a CA file) and DIR/ca.key
(keep it off the gateways; anyone with it can make certificates your
gateways accept). DIR is created if missing.`,
		Example: `  gatehouse pki ca --out ./pki --name "Lab CA" --key ecdsa --days 3650`,
		Args:    cobra.NoArgs,
		RunE:    func(cmd *cobra.Command, _ []string) error { return runPKICA(cmd, f) },
	}
	issue := &cobra.Command{
		Use:   "issue --ca CA --ca-key KEY --name CN --out PREFIX",
		Short: "Issue a gateway or client certificate: PREFIX.pem and PREFIX.key",
		Long: `Issue a certificate signed by the CA, for a gateway or a client machine. It
writes PREFIX.pem (the certificate) and PREFIX.key (its private key, 0600).
--ip, --dns and --email add subjectAltNames, so that a peer identifying by
address, FQDN or e-mail matches (RFC 4945 section 3.1).`,
		Example: `  gatehouse pki issue --ca pki/ca.pem --ca-key pki/ca.key --name gw-b --ip 198.51.100.2 --out pki/gw-b`,
		Args:    cobra.NoArgs,
		RunE:    func(cmd *cobra.Command, _ []string) error { return runPKIIssue(cmd, f) },
	}
	crl := &cobra.Command{
		Use:   "crl --ca CA --ca-key KEY [--revoke CERT]... --out CRL",
		Short: "Write or update the CA's revocation list",
		Long: `Write the CA's CRL, revoking each --revoke certificate. When --out already
holds a CRL of this CA, its entries are kept and its number goes up by one;
the file is replaced. Give the CRL to the gateways (x509.crl_files) and run
"gatehouse reload": peers with revoked certificates are refused from then on.
A CRL past its next update (--days) still revokes, and the plugin warns.`,
		Example: `  gatehouse pki crl --ca pki/ca.pem --ca-key pki/ca.key --revoke pki/laptop7.pem --out pki/crl.pem`,
		Args:    cobra.NoArgs,
		RunE:    func(cmd *cobra.Command, _ []string) error { return runPKICRL(cmd, f) },
	}
	for _, c := range []*cobra.Command{ca, issue} {
		c.Flags().StringVar(&f.name, "name", "", "common name of the subject (required)")
		c.Flags().StringVar(&f.org, "org", "Gatehouse", "organization of the subject")
		c.Flags().StringVar(&f.key, "key", "ecdsa", "key type: rsa (2048), rsa3072, ecdsa (P-256) or ecdsa384")
		c.Flags().StringVar(&f.start, "start", "", "valid from this date (YYYY-MM-DD or RFC 3339; default: an hour ago)")
	}
	ca.Flags().StringVar(&f.out, "out", "", "folder for ca.pem and ca.key (required)")
	ca.Flags().IntVar(&f.caDays, "days", 3650, "validity in days")
	issue.Flags().StringVar(&f.out, "out", "", "path prefix for PREFIX.pem and PREFIX.key (required)")
	issue.Flags().IntVar(&f.issueDays, "days", 825, "validity in days")
	issue.Flags().StringSliceVar(&f.ips, "ip", nil, "subjectAltName IP address (repeatable)")
	issue.Flags().StringSliceVar(&f.dns, "dns", nil, "subjectAltName DNS name (repeatable)")
	issue.Flags().StringSliceVar(&f.emails, "email", nil, "subjectAltName e-mail address (repeatable)")
	crl.Flags().StringVar(&f.out, "out", "", "the CRL file to write or update (required)")
	crl.Flags().IntVar(&f.crlDays, "days", 30, "days until the next update is due")
	crl.Flags().StringSliceVar(&f.revoke, "revoke", nil, "certificate file to revoke (repeatable)")
	for _, c := range []*cobra.Command{issue, crl} {
		c.Flags().StringVar(&f.caCert, "ca", "", "the CA certificate (required)")
		c.Flags().StringVar(&f.caKey, "ca-key", "", "the CA's private key (required)")
	}
	root.AddCommand(ca, issue, crl)
	return root
}

func pkiUsage(format string, a ...any) error { return cliError{exitUsage, fmt.Errorf(format, a...)} }

// request builds the subject and dates shared by ca and issue.
func (f *pkiFlags) request(days int) (pki.Request, error) {
	if f.name == "" || f.out == "" {
		return pki.Request{}, pkiUsage("--name and --out are required (see --help)")
	}
	if days <= 0 {
		return pki.Request{}, pkiUsage("--days must be positive")
	}
	r := pki.Request{CommonName: f.name, Organization: f.org, DNSNames: f.dns, Emails: f.emails}
	if f.start != "" {
		t, err := time.Parse(time.DateOnly, f.start)
		if err != nil {
			if t, err = time.Parse(time.RFC3339, f.start); err != nil {
				return r, pkiUsage("--start %q: want YYYY-MM-DD or RFC 3339", f.start)
			}
		}
		r.NotBefore = t
	} else {
		r.NotBefore = time.Now().Add(-time.Hour)
	}
	r.NotAfter = r.NotBefore.Add(time.Duration(days) * 24 * time.Hour)
	for _, s := range f.ips {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return r, pkiUsage("--ip %q: not an IP address", s)
		}
		r.IPs = append(r.IPs, a)
	}
	key, err := pki.NewKey(f.key)
	if err != nil {
		return r, pkiUsage("--key: %v", err)
	}
	r.Key = key
	return r, nil
}

func runPKICA(cmd *cobra.Command, f *pkiFlags) error {
	r, err := f.request(f.caDays)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(f.out, 0o755); err != nil {
		return err
	}
	ca, err := pki.NewRoot(r)
	if err != nil {
		return err
	}
	certFile, keyFile := filepath.Join(f.out, "ca.pem"), filepath.Join(f.out, "ca.key")
	if err := pki.WriteKey(keyFile, ca.Key); err != nil {
		return err
	}
	if err := pki.WriteCerts(certFile, ca.Cert); err != nil {
		return err
	}
	printIssued(cmd, ca.Cert, certFile, keyFile)
	return nil
}

func runPKIIssue(cmd *cobra.Command, f *pkiFlags) error {
	if f.caCert == "" || f.caKey == "" {
		return pkiUsage("--ca and --ca-key are required (see --help)")
	}
	r, err := f.request(f.issueDays)
	if err != nil {
		return err
	}
	ca, err := pki.LoadAuthority(f.caCert, f.caKey)
	if err != nil {
		return err
	}
	c, err := ca.Issue(r)
	if err != nil {
		return err
	}
	certFile, keyFile := f.out+".pem", f.out+".key"
	if err := pki.WriteKey(keyFile, r.Key); err != nil {
		return err
	}
	if err := pki.WriteCerts(certFile, c); err != nil {
		return err
	}
	printIssued(cmd, c, certFile, keyFile)
	return nil
}

func printIssued(cmd *cobra.Command, c *x509.Certificate, certFile, keyFile string) {
	fmt.Fprintf(cmd.OutOrStdout(), "%s\n  subject  %s\n  issuer   %s\n  valid    %s to %s\n  serial   %x\n  key      %s\n",
		certFile, c.Subject, c.Issuer, c.NotBefore.UTC().Format(time.DateOnly), c.NotAfter.UTC().Format(time.DateOnly), c.SerialNumber, keyFile)
}

func runPKICRL(cmd *cobra.Command, f *pkiFlags) error {
	if f.caCert == "" || f.caKey == "" || f.out == "" {
		return pkiUsage("--ca, --ca-key and --out are required (see --help)")
	}
	ca, err := pki.LoadAuthority(f.caCert, f.caKey)
	if err != nil {
		return err
	}
	var prev *x509.RevocationList
	if _, err := os.Stat(f.out); err == nil {
		if prev, err = ghx509.ReadCRL(f.out); err != nil {
			return fmt.Errorf("--out %s exists but is not a CRL: %w", f.out, err)
		}
	}
	var revoke []*x509.Certificate
	for _, p := range f.revoke {
		certs, err := ghx509.ReadCerts(p)
		if err != nil {
			return err
		}
		revoke = append(revoke, certs[0]) // the end-entity certificate, not intermediates after it
	}
	if f.crlDays <= 0 {
		return pkiUsage("--days must be positive")
	}
	der, err := ca.CRL(prev, revoke, time.Now(), time.Duration(f.crlDays)*24*time.Hour)
	if err != nil {
		return err
	}
	tmp := f.out + ".new"
	os.Remove(tmp)
	if err := pki.WriteCRL(tmp, der); err != nil {
		return err
	}
	if err := os.Rename(tmp, f.out); err != nil {
		return err
	}
	crl, _ := x509.ParseRevocationList(der)
	fmt.Fprintf(cmd.OutOrStdout(), "%s\n  issuer   %s\n  number   %v\n  revoked  %d\n  next     %s\n", f.out, crl.Issuer, crl.Number,
		len(crl.RevokedCertificateEntries), crl.NextUpdate.UTC().Format(time.DateOnly))
	return nil
}
