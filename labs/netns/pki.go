package netns

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// PKI is a lab CA made with `gatehouse pki`, as an operator would make
// one: Dir holds ca.pem and ca.key, and NAME.pem and NAME.key for each
// certificate issued.
type PKI struct {
	t   testing.TB
	bin string
	Dir string
}

// NewPKI makes the CA with the gatehouse binary in bin.
func NewPKI(t testing.TB, bin string) *PKI {
	p := &PKI{t: t, bin: bin, Dir: t.TempDir()}
	p.run("ca", "--out", p.Dir, "--name", "Gatehouse Lab CA", "--key", "ecdsa")
	return p
}

func (p *PKI) run(args ...string) {
	p.t.Helper()
	out, err := exec.Command(filepath.Join(p.bin, "gatehouse"), append([]string{"pki"}, args...)...).CombinedOutput()
	if err != nil {
		p.t.Fatalf("gatehouse pki %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// Path is a file of the PKI's folder.
func (p *PKI) Path(name string) string { return filepath.Join(p.Dir, name) }

// Issue makes NAME.pem and NAME.key with a key of kind (rsa, ecdsa);
// extra are more `gatehouse pki issue` flags (--ip, --start, --days).
func (p *PKI) Issue(name, kind string, extra ...string) {
	p.t.Helper()
	p.run(append([]string{"issue", "--ca", p.Path("ca.pem"), "--ca-key", p.Path("ca.key"), "--name", name, "--key", kind,
		"--out", p.Path(name)}, extra...)...)
}

// Revoke writes (or updates) crl.pem revoking the named certificates, and
// returns its path.
func (p *PKI) Revoke(names ...string) string {
	p.t.Helper()
	args := []string{"crl", "--ca", p.Path("ca.pem"), "--ca-key", p.Path("ca.key"), "--out", p.Path("crl.pem")}
	for _, n := range names {
		args = append(args, "--revoke", p.Path(n+".pem"))
	}
	p.run(args...)
	return p.Path("crl.pem")
}

// AuthEntry is a gatehoused auth list entry authenticating as NAME,
// trusting the lab CA, with the given CRLs.
func (p *PKI) AuthEntry(name string, crls ...string) string {
	crl := ""
	if len(crls) > 0 {
		crl = fmt.Sprintf(", crl_files: [%s]", strings.Join(crls, ", "))
	}
	return fmt.Sprintf("{x509: {ca_files: [%s]%s, cert_file: %s, key_file: %s}}", p.Path("ca.pem"), crl, p.Path(name+".pem"), p.Path(name+".key"))
}
