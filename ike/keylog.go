package ike

import (
	"fmt"
	"io"
)

// WriteKeyLog writes a child SA's ESP keys to w, one line per direction:
//
//	esp SRC DST SPI SUITE ENC-KEY INTEG-KEY
//
// (addresses, the SPI in hex, the suite's name, the keys in hex, the
// encryption key with its salt), for tshark to decrypt a capture. It is
// for debugging and tests only: whoever reads the file reads the tunnel.
func WriteKeyLog(w io.Writer, c *ChildSA) error {
	for _, d := range []struct {
		src, dst   string
		spi        uint32
		enc, integ []byte
	}{{c.Local.Addr().String(), c.Remote.Addr().String(), c.OutSPI, c.OutEnc, c.OutInteg},
		{c.Remote.Addr().String(), c.Local.Addr().String(), c.InSPI, c.InEnc, c.InInteg}} {
		if _, err := fmt.Fprintf(w, "esp %s %s %#08x %v %x %x\n", d.src, d.dst, d.spi, c.Suite, d.enc, d.integ); err != nil {
			return err
		}
	}
	return nil
}
