package esp

import (
	"crypto/aes"
	"crypto/cipher"
	"fmt"
	"testing"
)

// BenchmarkSealOpen is one packet encrypted and decrypted, per suite and
// payload size; compare BenchmarkBareAEAD for the cost of ESP around it.
func BenchmarkSealOpen(b *testing.B) {
	for _, name := range []string{"aes128gcm16", "aes256gcm16", "chacha20poly1305", "aes128-sha1", "aes256-sha256", "3des-sha1"} {
		s, _ := ParseSuite(name)
		for _, n := range []int{64, 576, 1400} {
			b.Run(fmt.Sprintf("%s/%d", name, n), func(b *testing.B) {
				o, in := pair(b, s, false, Limits{}, nil)
				in.window, _ = NewWindow(MaxWindow)
				buf := make([]byte, o.Headroom()+n, o.Headroom()+n+o.Tailroom())
				b.SetBytes(int64(n))
				b.ReportAllocs()
				for b.Loop() {
					pkt, err := o.Seal(buf, n, 4)
					if err != nil {
						b.Fatal(err)
					}
					if _, _, err := in.Open(pkt); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkBareAEAD is AES-128-GCM seal and open of the same sizes with no
// ESP framing: the floor the 1.5x target is measured against.
func BenchmarkBareAEAD(b *testing.B) {
	for _, n := range []int{64, 576, 1400} {
		b.Run(fmt.Sprintf("aes128gcm/%d", n), func(b *testing.B) {
			blk, _ := aes.NewCipher(make([]byte, 16))
			g, _ := cipher.NewGCM(blk)
			nonce := make([]byte, 12)
			aad := make([]byte, 8)
			buf := make([]byte, n, n+16)
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				ct := g.Seal(buf[:0], nonce, buf[:n], aad)
				if _, err := g.Open(ct[:0], nonce, ct, aad); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
