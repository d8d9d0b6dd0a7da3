// Package events is the audit log: every event an operator may act on, with
// a stable id (docs/events.md), written as one JSON line to log.audit by one
// goroutine, so a slow or full disk never holds up IKE or the data path.
// Records that do not fit the queue, or whose write fails, are lost and
// counted. Each record is also handed to a counter (the metrics) as it is
// emitted.
//
// IKE's events come from the engine (541 and 542 as Windows logs them,
// 5401 to 5403), L2TP's from the l2tp plugin (5410 to 5412); this package
// holds the ids of the core's own.
package events

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/gatehouse/gatehouse/ike"
	"github.com/gatehouse/gatehouse/plugins/sdk"
)

// The core's own event ids.
const (
	// LoginThrottled: a user or client address failed its logins too
	// often, and its attempts wait (or it is locked out).
	LoginThrottled  = 5413
	PluginRestarted = 5420
	ReloadApplied   = 5430
	ReloadRefused   = 5431
)

// names are the stable names beside the ids.
var names = map[int]string{
	ike.EventIKEUp: "ike-sa-up", ike.EventIKEDown: "ike-sa-down", ike.EventChildUp: "ipsec-sa-up", ike.EventChildDown: "ipsec-sa-down",
	ike.EventNegotiationErr: "negotiation-failed", sdk.EventUserConnected: "user-connected", sdk.EventUserDisconnected: "user-disconnected",
	sdk.EventUserAuthFailed: "user-auth-failed", LoginThrottled: "login-throttled", PluginRestarted: "plugin-restarted", ReloadApplied: "reload-applied",
	ReloadRefused: "reload-refused",
}

// Name is an event id's stable name ("" for an unknown id).
func Name(id int) string { return names[id] }

// Record is one line of the audit log.
type Record struct {
	Time    time.Time         `json:"time"`
	ID      int               `json:"id"`
	Event   string            `json:"event"`
	Tunnel  string            `json:"tunnel,omitempty"`
	Remote  string            `json:"remote,omitempty"`
	Reason  string            `json:"reason,omitempty"`
	Message string            `json:"message,omitempty"`
	Fields  map[string]string `json:"fields,omitempty"`
}

// Counter hears of every record emitted and every record lost (the
// metrics).
type Counter interface {
	Event(Record)
	Lost()
}

// queueLen bounds the records waiting for the writer.
const queueLen = 1024

// Log writes records as JSON lines to log.audit (a file, or - for stdout)
// and counts every one. It is safe for concurrent use.
type Log struct {
	log     *zap.Logger
	counter Counter

	mu      sync.Mutex
	q       chan Record   // nil: no audit file
	done    chan struct{} // closed when the writer has finished
	lost    atomic.Uint64
	lastErr time.Time
}

// New makes a log; c may be nil.
func New(log *zap.Logger, c Counter) *Log { return &Log{log: log, counter: c} }

// Open starts writing to path ("" none, "-" stdout). The file is created
// 0640 if missing and appended to.
func (a *Log) Open(path string) error {
	if path == "" {
		return nil
	}
	var w io.WriteCloser = nopCloser{os.Stdout}
	if path != "-" {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
		if err != nil {
			return fmt.Errorf("log.audit: %w", err)
		}
		w = f
	}
	q, done := make(chan Record, queueLen), make(chan struct{})
	a.mu.Lock()
	a.q, a.done = q, done
	a.mu.Unlock()
	go a.write(q, w, done)
	return nil
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// closeWait bounds how long Close waits for the queued records to be
// written: a hung disk must not hang a shutdown.
const closeWait = 5 * time.Second

// Close stops the writer after the queued records, waiting for them to be
// written (closeWait at most).
func (a *Log) Close() {
	a.mu.Lock()
	q, done := a.q, a.done
	a.q = nil
	a.mu.Unlock()
	if q == nil {
		return
	}
	close(q)
	select {
	case <-done:
	case <-time.After(closeWait):
		a.log.Warn("audit log writer still busy at shutdown; the last records may be lost")
	}
}

// Lost counts the records lost so far.
func (a *Log) Lost() uint64 { return a.lost.Load() }

func (a *Log) loseOne() {
	a.lost.Add(1)
	if a.counter != nil {
		a.counter.Lost()
	}
}

func (a *Log) write(q chan Record, w io.WriteCloser, done chan struct{}) {
	defer close(done)
	defer w.Close()
	for r := range q {
		b, err := json.Marshal(r)
		if err == nil {
			_, err = w.Write(append(b, '\n'))
		}
		if err != nil {
			a.loseOne()
			// Once a minute at most: a full disk must not flood the log.
			if time.Since(a.lastErr) > time.Minute {
				a.lastErr = time.Now()
				a.log.Error("audit log write failed; records are being lost, forwarding goes on", zap.Error(err), zap.Uint64("lost", a.lost.Load()))
			}
		}
	}
}

// Emit counts a record and queues it for the audit file.
func (a *Log) Emit(r Record) {
	if r.Time.IsZero() {
		r.Time = time.Now().UTC()
	}
	r.Event = names[r.ID]
	if a.counter != nil {
		a.counter.Event(r)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.q == nil {
		return
	}
	select {
	case a.q <- r:
	default:
		a.loseOne()
	}
}

// FromIKE makes the record of an engine event.
func FromIKE(e ike.Event) Record {
	r := Record{ID: e.ID, Tunnel: e.Peer, Reason: e.Reason, Message: e.Message, Fields: map[string]string{"ike_version": strconv.Itoa(max(e.Version, 1))}}
	if e.Remote.IsValid() {
		r.Remote = e.Remote.String()
	}
	if e.Child != nil {
		r.Fields["in_spi"], r.Fields["out_spi"] = fmt.Sprintf("%#08x", e.Child.InSPI), fmt.Sprintf("%#08x", e.Child.OutSPI)
		r.Fields["suite"], r.Fields["rekey"] = e.Child.Suite.String(), strconv.FormatBool(e.Rekey)
		if e.Child.Tunnel && e.Child.LocalTS.Prefix.IsValid() {
			// A tunnel has an SA pair per subnet pair: say which.
			r.Fields["local_ts"], r.Fields["remote_ts"] = e.Child.LocalTS.Prefix.String(), e.Child.RemoteTS.Prefix.String()
		}
	}
	return r
}
