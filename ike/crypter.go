package ike

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/des"
	"fmt"
)

// crypter encrypts ISAKMP message bodies in CBC mode (RFC 2409 appendix
// B). The IV chaining is the caller's: each call takes an IV and returns
// the last ciphertext block, the next message's IV.
type crypter struct {
	block cipher.Block
}

func newCrypter(p Phase1, key []byte) (*crypter, error) {
	var b cipher.Block
	var err error
	switch p.Cipher {
	case cipherAESCBC:
		b, err = aes.NewCipher(key)
	case cipher3DESCBC:
		b, err = des.NewTripleDESCipher(key)
	default:
		return nil, fmt.Errorf("%w: phase 1 cipher %d", ErrUnknownAlgorithm, p.Cipher)
	}
	if err != nil {
		return nil, fmt.Errorf("phase 1 cipher: %w", err)
	}
	return &crypter{block: b}, nil
}

func (p Phase1) keyLen() int { return p.KeyBits / 8 }

func (c *crypter) blockSize() int { return c.block.BlockSize() }

// encrypt pads plain with zeros to the block size (RFC 2408 section 3.1
// leaves the padding's content open; receivers go by payload lengths).
func (c *crypter) encrypt(iv, plain []byte) (ct, next []byte) {
	bs := c.block.BlockSize()
	n := (len(plain) + bs - 1) / bs * bs
	if n == 0 {
		n = bs
	}
	ct = make([]byte, n)
	copy(ct, plain)
	cipher.NewCBCEncrypter(c.block, iv).CryptBlocks(ct, ct)
	return ct, append([]byte(nil), ct[n-bs:]...)
}

func (c *crypter) decrypt(iv, ct []byte) (plain, next []byte, err error) {
	bs := c.block.BlockSize()
	if len(ct) == 0 || len(ct)%bs != 0 {
		return nil, nil, fmt.Errorf("%w: encrypted body of %d bytes, not a multiple of %d", ErrMalformed, len(ct), bs)
	}
	next = append([]byte(nil), ct[len(ct)-bs:]...)
	plain = make([]byte, len(ct))
	cipher.NewCBCDecrypter(c.block, iv).CryptBlocks(plain, ct)
	return plain, next, nil
}
