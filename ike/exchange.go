package ike

import (
	"crypto/sha256"
	"fmt"
	"time"

	"github.com/gatehouse/gatehouse/ike/retry"
)

// msg is one message of an exchange, being built or just read.
type msg struct {
	payloads []Payload
	bodies   [][]byte // received: each payload's body as on the wire
	// afterHash is, for a received message whose first payload is HASH,
	// the payloads after it as on the wire (quick mode and informational
	// hashes cover them).
	afterHash []byte
	// authed: a task verified this received message's HASH or signature.
	authed bool
	// nextIV is the CBC chain after this encrypted message; the exchange
	// takes it only once the message is accepted.
	nextIV []byte
}

func (m *msg) add(p ...Payload) { m.payloads = append(m.payloads, p...) }

func (m *msg) get(t PayloadType) Payload { return Find(m.payloads, t) }

// body returns the wire body of the first payload of type t.
func (m *msg) body(t PayloadType) []byte {
	for i, p := range m.payloads {
		if p.Type() == t && i < len(m.bodies) {
			return m.bodies[i]
		}
	}
	return nil
}

func (m *msg) all(t PayloadType) []Payload {
	var out []Payload
	for _, p := range m.payloads {
		if p.Type() == t {
			out = append(out, p)
		}
	}
	return out
}

// task is one piece of an exchange (strongSwan's model): it adds payloads
// to the messages it sends and reads the ones it receives. done reports
// that the task has finished its part.
type task interface {
	build(x *exchange, out *msg) (done bool, err error)
	process(x *exchange, in *msg) (done bool, err error)
}

// failure is an error with the reason class for audit events and the
// notify to send the peer (0: none).
type failure struct {
	reason string
	notify NotifyType
	err    error
	// badProof: a well-formed message whose proof (HASH, signature,
	// certificate, Kerberos ticket) we checked and refused. It is not
	// authenticated, so it changes nothing, but the peer is told once: a
	// misconfigured peer then learns at once why, as it would from
	// strongSwan or Windows.
	badProof bool
	// reported: the audit event for this failure has gone out already.
	reported bool
}

func (f *failure) Error() string { return f.err.Error() }
func (f *failure) Unwrap() error { return f.err }

func fail(reason string, notify NotifyType, format string, a ...any) error {
	return &failure{reason: reason, notify: notify, err: fmt.Errorf(format, a...)}
}

// refusedProof is fail for a peer's proof that did not verify.
func refusedProof(notify NotifyType, format string, a ...any) error {
	return &failure{reason: "authentication-failed", notify: notify, err: fmt.Errorf(format, a...), badProof: true}
}

// exchange is one ISAKMP exchange on an IKE SA: main mode (message ID 0),
// a quick mode, or an informational exchange.
type exchange struct {
	sa        *IKESA
	typ       ExchangeType
	msgID     uint32
	initiator bool // of this exchange
	tasks     []task
	done      []bool
	iv        []byte // CBC chain for quick mode and informational

	lastSent     []byte
	lastRecvHash [32]byte
	retry        retry.Timer // armed while we expect an answer
	finished     time.Time   // zero while running
	// refused is why the latest message that did not authenticate was
	// dropped: the exchange fails with it if nothing valid comes before
	// the retransmissions run out. noted: an operator was told once;
	// told: the peer was told of a refused proof once.
	refused     error
	noted, told bool
	// accepted: a message of the peer's has been accepted.
	accepted bool
}

// wiper is a task that holds secrets (a private DH value) until its
// exchange ends.
type wiper interface{ wipe() }

// wipe zeroes what the exchange's tasks hold; the exchange is over.
func (x *exchange) wipe() {
	for _, t := range x.tasks {
		if w, ok := t.(wiper); ok {
			w.wipe()
		}
	}
}

func (x *exchange) finishedAll() bool {
	for _, d := range x.done {
		if !d {
			return false
		}
	}
	return true
}

// build asks every unfinished task for its part of the next message.
func (x *exchange) build(out *msg) error {
	for i, t := range x.tasks {
		if x.done[i] {
			continue
		}
		d, err := t.build(x, out)
		if err != nil {
			return err
		}
		x.done[i] = d
	}
	return nil
}

func (x *exchange) process(in *msg) error {
	for i, t := range x.tasks {
		if x.done[i] {
			continue
		}
		d, err := t.process(x, in)
		if err != nil {
			return err
		}
		x.done[i] = d
	}
	return nil
}

func hashDatagram(b []byte) [32]byte { return sha256.Sum256(b) }

// finishedKeep is how long a finished exchange stays to answer a
// retransmitted last message.
const finishedKeep = 30 * time.Second
