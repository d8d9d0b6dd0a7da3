package eap

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/auth/radius"
)

// fakeRADIUS runs EAP-MSCHAPv2 as a RADIUS server would, behind the
// relay: challenges while the method runs, Access-Accept with the MSK in
// the MS-MPPE keys, or Access-Reject.
func fakeRADIUS(t *testing.T, rounds *int) func(context.Context, radius.EAPRequest) (radius.EAPResult, error) {
	inner := NewServer("radius", NTHashVerifier(users), &fixed{[]byte{5}})
	if _, err := inner.Start(); err != nil {
		t.Fatal(err)
	}
	return func(_ context.Context, r radius.EAPRequest) (radius.EAPResult, error) {
		*rounds++
		if r.User != "User" || (*rounds > 1 && (string(r.State) != "st" || r.Server != "radius-1")) {
			t.Errorf("round %d: %+v", *rounds, r)
		}
		out, err := inner.Receive(r.EAP)
		if err != nil {
			return radius.EAPResult{}, err
		}
		res := radius.EAPResult{EAP: out, State: []byte("st"), Result: radius.Result{Server: "radius-1"}}
		switch {
		case !inner.Done():
			res.Challenge = true
		case inner.Succeeded():
			res.Accept = true
			res.MPPERecvKey, res.MPPESendKey = inner.MSK()[:32], inner.MSK()[32:]
		}
		return res, nil
	}
}

// The method runs at the RADIUS server; the relay and the peer end with
// the same MSK, the relay's from the MS-MPPE keys.
func TestRelay(t *testing.T) {
	rounds := 0
	r := NewRelay(fakeRADIUS(t, &rounds), "192.0.2.9", time.Second, &fixed{[]byte{5}})
	c := NewPeer("User", "clientPass", rand.Reader)
	run(t, r, c)
	if !r.Succeeded() || c.Err() != nil || r.User() != "User" || !bytes.Equal(r.MSK(), c.MSK()) || rounds != 3 {
		t.Fatalf("relay %v %v, peer %v, rounds %d", r.Succeeded(), r.Err(), c.Err(), rounds)
	}

	rounds = 0
	r = NewRelay(fakeRADIUS(t, &rounds), "192.0.2.9", time.Second, &fixed{[]byte{5}})
	c = NewPeer("User", "wrong", rand.Reader)
	run(t, r, c)
	if r.Succeeded() || !errors.Is(r.Err(), ErrRejected) || c.Err() == nil {
		t.Fatalf("wrong password: relay %v, peer %v", r.Err(), c.Err())
	}
}

// No RADIUS server answering fails the exchange with EAP-Failure and the
// reason.
func TestRelayNoServer(t *testing.T) {
	r := NewRelay(func(context.Context, radius.EAPRequest) (radius.EAPResult, error) {
		return radius.EAPResult{}, radius.ErrNoServer
	}, "", time.Second, rand.Reader)
	c := NewPeer("User", "clientPass", rand.Reader)
	run(t, r, c)
	if !errors.Is(r.Err(), radius.ErrNoServer) || !c.Done() || c.Err() == nil {
		t.Fatalf("relay %v, peer %v", r.Err(), c.Err())
	}
}
