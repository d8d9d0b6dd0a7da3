// Package pcap writes capture files of synthetic UDP datagrams, so tests
// can hand messages our codecs built to tshark and check that its
// dissectors read them as well formed.
package pcap

import (
	"encoding/binary"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/esp"
)

// Datagram is one UDP datagram over IPv4.
type Datagram struct {
	Src, Dst netip.AddrPort
	Payload  []byte
}

// linkRaw is LINKTYPE_RAW: each record starts with the IP header.
const linkRaw = 101

// Write writes a pcap file (the classic format, microsecond stamps).
func Write(w io.Writer, ds []Datagram) error {
	hdr := make([]byte, 24)
	binary.LittleEndian.PutUint32(hdr[0:], 0xa1b2c3d4)
	binary.LittleEndian.PutUint16(hdr[4:], 2)
	binary.LittleEndian.PutUint16(hdr[6:], 4)
	binary.LittleEndian.PutUint32(hdr[16:], 65535)
	binary.LittleEndian.PutUint32(hdr[20:], linkRaw)
	if _, err := w.Write(hdr); err != nil {
		return err
	}
	ts := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, d := range ds {
		if !d.Src.Addr().Is4() || !d.Dst.Addr().Is4() || len(d.Payload) > 65535-28 {
			return fmt.Errorf("datagram %d: IPv4 and at most 65507 bytes only", i)
		}
		pkt := make([]byte, 28+len(d.Payload))
		pkt[0], pkt[8], pkt[9] = 0x45, 64, 17
		binary.BigEndian.PutUint16(pkt[2:], uint16(len(pkt)))
		s, t := d.Src.Addr().As4(), d.Dst.Addr().As4()
		copy(pkt[12:], s[:])
		copy(pkt[16:], t[:])
		binary.BigEndian.PutUint16(pkt[10:], esp.Checksum(pkt[:20], 0))
		binary.BigEndian.PutUint16(pkt[20:], d.Src.Port())
		binary.BigEndian.PutUint16(pkt[22:], d.Dst.Port())
		binary.BigEndian.PutUint16(pkt[24:], uint16(8+len(d.Payload)))
		copy(pkt[28:], d.Payload) // UDP checksum 0: none (RFC 768)
		rec := make([]byte, 16)
		at := ts.Add(time.Duration(i) * time.Millisecond)
		binary.LittleEndian.PutUint32(rec[0:], uint32(at.Unix()))
		binary.LittleEndian.PutUint32(rec[4:], uint32(at.Nanosecond()/1000))
		binary.LittleEndian.PutUint32(rec[8:], uint32(len(pkt)))
		binary.LittleEndian.PutUint32(rec[12:], uint32(len(pkt)))
		if _, err := w.Write(append(rec, pkt...)); err != nil {
			return err
		}
	}
	return nil
}

// Tshark writes ds to a file in dir and returns tshark's verbose
// dissection (-V) with the given extra arguments.
func Tshark(dir string, ds []Datagram, args ...string) (string, error) {
	if _, err := exec.LookPath("tshark"); err != nil {
		return "", fmt.Errorf("tshark not found (apt-get install tshark): %w", err)
	}
	path := filepath.Join(dir, "capture.pcap")
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	if err := Write(f, ds); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	out, err := exec.Command("tshark", append([]string{"-n", "-r", path, "-V"}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("tshark: %w", err)
	}
	return string(out), nil
}

// Malformed reports the lines where tshark flagged a malformed or
// suspicious packet.
func Malformed(dissection string) []string {
	var bad []string
	for _, l := range strings.Split(dissection, "\n") {
		if strings.Contains(l, "Malformed") || strings.Contains(l, "[Expert Info (Error") || strings.Contains(l, "[Expert Info (Warning") {
			bad = append(bad, strings.TrimSpace(l))
		}
	}
	return bad
}

// wiresharkAlgs names our suites as Wireshark's ESP SA table does.
var wiresharkAlgs = map[string][2]string{
	"aes128gcm16":   {"AES-GCM with 16 octet ICV [RFC4106]", "NULL"},
	"aes256gcm16":   {"AES-GCM with 16 octet ICV [RFC4106]", "NULL"},
	"aes128-sha1":   {"AES-CBC [RFC3602]", "HMAC-SHA-1-96 [RFC2404]"},
	"aes256-sha1":   {"AES-CBC [RFC3602]", "HMAC-SHA-1-96 [RFC2404]"},
	"aes256-sha256": {"AES-CBC [RFC3602]", "HMAC-SHA-256-128 [RFC4868]"},
	"3des-sha1":     {"TripleDES-CBC [RFC2451]", "HMAC-SHA-1-96 [RFC2404]"},
	"null-sha256":   {"NULL", "HMAC-SHA-256-128 [RFC4868]"},
}

// CanDecrypt reports whether tshark decrypts a suite of ours.
func CanDecrypt(suite string) bool {
	_, ok := wiresharkAlgs[suite]
	return ok
}

// ESPSA is tshark's -o option for one ESP SA, so it decrypts captures:
// keys in hex, either may be empty.
func ESPSA(suite, src, dst string, spi uint32, encHex, integHex string) string {
	names := wiresharkAlgs[suite]
	if encHex != "" {
		encHex = "0x" + encHex
	}
	if integHex != "" {
		integHex = "0x" + integHex
	}
	family := "IPv4"
	if strings.Contains(src, ":") {
		family = "IPv6"
	}
	return fmt.Sprintf(`uat:esp_sa:"%s","%s","%s","%#08x","%s","%s","%s","%s"`, family, src, dst, spi, names[0], encHex, names[1], integHex)
}

// IKEv2SA is tshark's -o option for one IKEv2 SA's keys, so it decrypts
// and checks its Encrypted payloads: the SPIs and keys in hex, and the
// algorithms as Wireshark names them ("AES-CBC-256 [RFC3602]",
// "HMAC_SHA2_256_128 [RFC4868]"; "NONE [RFC4306]" with an AEAD cipher).
// The line is what strongSwan's save-keys plugin writes.
func IKEv2SA(spii, spir, skei, sker, encr, skai, skar, integ string) string {
	return fmt.Sprintf(`uat:ikev2_decryption_table:%s,%s,%s,%s,"%s",%s,%s,"%s"`, spii, spir, skei, sker, encr, skai, skar, integ)
}

// KeyLogPrefs reads a key log (ike.WriteKeyLog's lines, as gatehoused
// --keylog and gatehouse connect --keylog write them) into tshark's
// options: decryption on, and one ESP SA per line.
func KeyLogPrefs(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	args := []string{"-o", "esp.enable_encryption_decode:TRUE"}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		// esp SRC DST SPI SUITE ENC [INTEG]: an AEAD suite has no
		// integrity key.
		f := strings.Fields(line)
		if len(f) < 6 || len(f) > 7 || f[0] != "esp" {
			return nil, fmt.Errorf("key log line %q: want esp SRC DST SPI SUITE ENC [INTEG]", line)
		}
		var spi uint32
		if _, err := fmt.Sscan(f[3], &spi); err != nil {
			return nil, fmt.Errorf("key log line %q: SPI: %w", line, err)
		}
		suite, integ := f[4], ""
		if len(f) == 7 {
			integ = f[6]
		}
		if !CanDecrypt(suite) {
			return nil, fmt.Errorf("key log line %q: tshark cannot decrypt %s", line, suite)
		}
		args = append(args, "-o", ESPSA(suite, f[1], f[2], spi, f[5], integ))
	}
	return args, nil
}

// Inner is what a decrypted capture holds: pings (ICMP and ICMPv6 echo)
// seen inside ESP, and seen on the wire in clear.
type Inner struct {
	InESP, Clear int
}

// CountICMP decodes a capture with prefs and counts its pings (ICMP and
// ICMPv6 echo), inside ESP and in clear.
func CountICMP(file string, prefs []string) (Inner, error) {
	args := append([]string{"-n", "-r", file, "-T", "fields", "-e", "esp.spi", "-e", "icmp.type", "-e", "icmpv6.type"}, prefs...)
	out, err := exec.Command("tshark", args...).CombinedOutput()
	if err != nil {
		return Inner{}, fmt.Errorf("tshark: %v\n%s", err, out)
	}
	var in Inner
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Split(line, "\t")
		// Echo requests and replies (pings): ICMP 8 and 0, ICMPv6 128 and
		// 129. The outer link's own ICMPv6 (neighbour discovery, MLD) is
		// not what a tunnel carries.
		if len(f) < 3 || !(slices.Contains([]string{"0", "8"}, f[1]) || slices.Contains([]string{"128", "129"}, f[2])) {
			continue
		}
		if f[0] == "" {
			in.Clear++
		} else {
			in.InESP++
		}
	}
	return in, nil
}
