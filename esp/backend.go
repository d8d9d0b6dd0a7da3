package esp

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/des"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"sync"

	"golang.org/x/crypto/chacha20poly1305"
)

// Backend makes Transforms. The software backend (Go crypto) is the one
// built in; crypto offload backends are to join it behind this interface.
type Backend interface {
	Name() string
	Supports(s Suite) bool
	NewTransform(s Suite, encKey, integKey []byte) (Transform, error)
}

// SoftwareBackend is the name of the built-in backend.
const SoftwareBackend = "software"

var (
	regMu    sync.RWMutex
	registry = map[string]Backend{}
	// softwareErr is why the software backend failed its self-test, if it did.
	softwareErr error
)

type software struct{}

func (software) Name() string { return SoftwareBackend }
func (software) Supports(s Suite) bool {
	return s.Protocol == ProtoESP && s.Encryption != nil
}
func (software) NewTransform(s Suite, e, i []byte) (Transform, error) {
	if softwareErr != nil {
		return nil, softwareErr
	}
	return newSoftware(s, e, i)
}

func init() {
	if err := softwareSelfTest(); err != nil {
		softwareErr = fmt.Errorf("software crypto backend failed its known-answer self-test: %w", err)
	}
	registry[SoftwareBackend] = software{}
}

// Backends lists registered backend names.
func Backends() []string {
	regMu.RLock()
	defer regMu.RUnlock()
	out := make([]string, 0, len(registry))
	for n := range registry {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func lookupBackend(name string) (Backend, error) {
	if name == "" {
		name = SoftwareBackend
	}
	regMu.RLock()
	defer regMu.RUnlock()
	b, ok := registry[name]
	if !ok {
		return nil, fmt.Errorf("no crypto backend named %q (registered: %v)", name, Backends())
	}
	return b, nil
}

// softwareSelfTest runs published known-answer vectors through the
// primitives the software backend is built from.
func softwareSelfTest() error {
	h := func(s string) []byte {
		b, err := hex.DecodeString(s)
		if err != nil {
			panic(err)
		}
		return b
	}
	check := func(name string, got, want []byte) error {
		if !bytes.Equal(got, want) {
			return fmt.Errorf("%s: got %x, want %x", name, got, want)
		}
		return nil
	}
	// RFC 2202 section 3 test case 2 (HMAC-SHA-1) and RFC 4231 section 4.3
	// test case 2 (HMAC-SHA-256).
	m := hmac.New(sha1.New, []byte("Jefe"))
	m.Write([]byte("what do ya want for nothing?"))
	if err := check("HMAC-SHA-1 (RFC 2202 case 2)", m.Sum(nil), h("effcdf6ae5eb2fa2d27416d5f184df9c259a7c79")); err != nil {
		return err
	}
	m = hmac.New(sha256.New, []byte("Jefe"))
	m.Write([]byte("what do ya want for nothing?"))
	if err := check("HMAC-SHA-256 (RFC 4231 case 2)", m.Sum(nil), h("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")); err != nil {
		return err
	}
	// GCM specification (McGrew, Viega) test cases 2 (AES-128) and 14
	// (AES-256): zero key, zero IV, one zero block.
	for _, c := range []struct {
		name, key, out string
	}{
		{"AES-128-GCM (GCM spec case 2)", "00000000000000000000000000000000", "0388dace60b6a392f328c2b971b2fe78ab6e47d42cec13bdf53a67b21257bddf"},
		{"AES-256-GCM (GCM spec case 14)", "0000000000000000000000000000000000000000000000000000000000000000", "cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919"},
	} {
		b, _ := aes.NewCipher(h(c.key))
		g, _ := cipher.NewGCM(b)
		if err := check(c.name, g.Seal(nil, make([]byte, 12), make([]byte, 16), nil), h(c.out)); err != nil {
			return err
		}
	}
	// RFC 7539 section 2.8.2 (ChaCha20-Poly1305 AEAD).
	a, _ := chacha20poly1305.New(h("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"))
	ct := a.Seal(nil, h("070000004041424344454647"),
		[]byte("Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it."),
		h("50515253c0c1c2c3c4c5c6c7"))
	if err := check("ChaCha20-Poly1305 (RFC 7539 2.8.2)", ct, h("d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc3ff4def08e4b7a9de576d26586cec64b6116"+"1ae10b594f09e26a7e902ecbd0600691")); err != nil {
		return err
	}
	// RFC 3602 section 4 case 1 (AES-128-CBC).
	b, _ := aes.NewCipher(h("06a9214036b8a15b512e03d534120006"))
	out := make([]byte, 16)
	cipher.NewCBCEncrypter(b, h("3dafba429d9eb430b422da802c9fac41")).CryptBlocks(out, []byte("Single block msg"))
	if err := check("AES-128-CBC (RFC 3602 case 1)", out, h("e353779c1079aeb82708942dbe77181a")); err != nil {
		return err
	}
	// NIST SP 800-67 Rev. 1 appendix B (TDEA, three keys, ECB).
	d, _ := des.NewTripleDESCipher(h("0123456789abcdef23456789abcdef01456789abcdef0123"))
	in := []byte("The qufck brown fox jump")
	out = make([]byte, len(in))
	for i := 0; i < len(in); i += 8 {
		d.Encrypt(out[i:], in[i:])
	}
	return check("3DES (SP 800-67 appendix B)", out, h("a826fd8ce53b855fcce21c8112256fe668d5c05dd9b6b900"))
}
