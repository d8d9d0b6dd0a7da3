package ike

// vendorCapability is a phase 1 task for a capability both sides announce
// by vendor ID (DPD, fragmentation): we offer it in our first message
// when it is on, a responder echoes it only to a peer that offered it, and
// the peer's offer is noted on the SA.
type vendorCapability struct {
	step int
	vid  []byte
	is   func(vid []byte) bool
	on   func(*PeerConfig) bool
	flag func(*IKESA) *bool // set when the peer offered it
}

func (t *vendorCapability) build(x *exchange, out *msg) (bool, error) {
	t.step++
	if t.step <= 2 && t.on(x.sa.Peer) && (t.step == 1 || *t.flag(x.sa)) {
		out.add(&Data{T: PayloadVendorID, Data: t.vid})
	}
	return t.step >= 2, nil
}

func (t *vendorCapability) process(x *exchange, in *msg) (bool, error) {
	t.step++
	for _, p := range in.all(PayloadVendorID) {
		if t.on(x.sa.Peer) && t.is(p.(*Data).Data) {
			*t.flag(x.sa) = true
		}
	}
	return t.step >= 2, nil
}
