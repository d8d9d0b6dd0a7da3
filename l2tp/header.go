package l2tp

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrMalformed marks input that is not valid L2TPv2. Callers count it and
// drop the packet.
var ErrMalformed = errors.New("malformed L2TP")

// Header bits (RFC 2661 section 3.1).
const (
	flagT       = 0x8000 // control message
	flagL       = 0x4000 // Length present
	flagS       = 0x0800 // Ns and Nr present
	flagO       = 0x0200 // Offset Size present
	flagP       = 0x0100 // priority (data only)
	versionMask = 0x000f
	Version     = 2
	// reservedBits must be zero; RFC 2661 section 3.1 says to ignore
	// them on receipt, so they are not checked.
	controlHeaderLen = 12
)

// Port is L2TP's UDP port (RFC 2661 section 8.1).
const Port = 1701

// Header is a decoded L2TP header.
type Header struct {
	Control   bool
	HasLength bool
	HasSeq    bool
	Priority  bool
	Length    uint16
	TunnelID  uint16
	SessionID uint16
	Ns, Nr    uint16
}

// ParseHeader decodes the header of b and returns the payload after it
// (after any offset padding, and cut to Length when present). It does not
// allocate: the data path calls it per packet.
func ParseHeader(b []byte) (Header, []byte, error) {
	if len(b) < 6 {
		return Header{}, nil, fmt.Errorf("%w: %d bytes", ErrMalformed, len(b))
	}
	flags := binary.BigEndian.Uint16(b)
	if v := flags & versionMask; v != Version {
		// Version 1 is L2F, 3 is L2TPv3: not ours (section 3.1 says
		// to drop them, or answer with a StopCCN on a control channel).
		return Header{}, nil, fmt.Errorf("%w: version %d", ErrMalformed, v)
	}
	h := Header{Control: flags&flagT != 0, HasLength: flags&flagL != 0, HasSeq: flags&flagS != 0, Priority: flags&flagP != 0}
	off := 2
	if h.HasLength {
		h.Length = binary.BigEndian.Uint16(b[2:])
		if int(h.Length) > len(b) || h.Length < 6 {
			return Header{}, nil, fmt.Errorf("%w: Length %d, packet %d bytes", ErrMalformed, h.Length, len(b))
		}
		b = b[:h.Length]
		off = 4
	}
	if len(b) < off+4 {
		return Header{}, nil, fmt.Errorf("%w: header cut short", ErrMalformed)
	}
	h.TunnelID = binary.BigEndian.Uint16(b[off:])
	h.SessionID = binary.BigEndian.Uint16(b[off+2:])
	off += 4
	if h.HasSeq {
		if len(b) < off+4 {
			return Header{}, nil, fmt.Errorf("%w: Ns/Nr cut short", ErrMalformed)
		}
		h.Ns = binary.BigEndian.Uint16(b[off:])
		h.Nr = binary.BigEndian.Uint16(b[off+2:])
		off += 4
	}
	if flags&flagO != 0 {
		if h.Control {
			return Header{}, nil, fmt.Errorf("%w: control message with an offset (section 3.1)", ErrMalformed)
		}
		if len(b) < off+2 {
			return Header{}, nil, fmt.Errorf("%w: offset size cut short", ErrMalformed)
		}
		pad := int(binary.BigEndian.Uint16(b[off:]))
		off += 2
		if len(b) < off+pad {
			return Header{}, nil, fmt.Errorf("%w: offset %d past the end", ErrMalformed, pad)
		}
		off += pad
	}
	if h.Control && (!h.HasLength || !h.HasSeq) {
		return Header{}, nil, fmt.Errorf("%w: control message without Length or Ns/Nr (section 3.1)", ErrMalformed)
	}
	return h, b[off:], nil
}

// AppendControlHeader writes a control header for a message whose AVPs
// take avpLen bytes.
func AppendControlHeader(b []byte, tunnel, session, ns, nr uint16, avpLen int) []byte {
	b = binary.BigEndian.AppendUint16(b, flagT|flagL|flagS|Version)
	b = binary.BigEndian.AppendUint16(b, uint16(controlHeaderLen+avpLen))
	b = binary.BigEndian.AppendUint16(b, tunnel)
	b = binary.BigEndian.AppendUint16(b, session)
	b = binary.BigEndian.AppendUint16(b, ns)
	return binary.BigEndian.AppendUint16(b, nr)
}

// DataHeaderLen is the size AppendDataHeader writes.
func DataHeaderLen(seq bool) int {
	if seq {
		return 10
	}
	return 6
}

// AppendDataHeader writes a data message header: no Length (the UDP
// datagram gives it), sequence numbers only when the session asked for
// them (Sequencing Required, section 4.4.6).
func AppendDataHeader(b []byte, tunnel, session uint16, seq bool, ns uint16) []byte {
	if seq {
		b = binary.BigEndian.AppendUint16(b, flagS|Version)
	} else {
		b = binary.BigEndian.AppendUint16(b, Version)
	}
	b = binary.BigEndian.AppendUint16(b, tunnel)
	b = binary.BigEndian.AppendUint16(b, session)
	if seq {
		b = binary.BigEndian.AppendUint16(b, ns)
		b = binary.BigEndian.AppendUint16(b, 0) // Nr is reserved in data messages
	}
	return b
}

// seqLess is "a before b" in 16-bit sequence space (section 5.8: a
// value is earlier if it lies in the 32767 values before).
func seqLess(a, b uint16) bool { return int16(a-b) < 0 }
