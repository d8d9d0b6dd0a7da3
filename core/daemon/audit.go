package daemon

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

// Audit event ids (docs/events.md). IKE's come from the engine (541 and
// 542 as Windows logs them, 5401 to 5403), L2TP's from the plugin
// (5410 to 5412); these are the daemon's own.
const (
	// EventLoginThrottled: a user or client address failed its logins
	// too often, and its attempts wait (or it is locked out).
	EventLoginThrottled  = 5413
	EventPluginRestarted = 5420
	EventReloadApplied   = 5430
	EventReloadRefused   = 5431
)

// eventNames are the stable names beside the ids.
var eventNames = map[int]string{
	ike.EventIKEUp: "ike-sa-up", ike.EventIKEDown: "ike-sa-down", ike.EventChildUp: "ipsec-sa-up", ike.EventChildDown: "ipsec-sa-down",
	ike.EventNegotiationErr: "negotiation-failed", sdk.EventUserConnected: "user-connected", sdk.EventUserDisconnected: "user-disconnected",
	sdk.EventUserAuthFailed: "user-auth-failed", EventLoginThrottled: "login-throttled", EventPluginRestarted: "plugin-restarted", EventReloadApplied: "reload-applied",
	EventReloadRefused: "reload-refused",
}

// AuditRecord is one line of the audit log.
type AuditRecord struct {
	Time    time.Time         `json:"time"`
	ID      int               `json:"id"`
	Event   string            `json:"event"`
	Tunnel  string            `json:"tunnel,omitempty"`
	Remote  string            `json:"remote,omitempty"`
	Reason  string            `json:"reason,omitempty"`
	Message string            `json:"message,omitempty"`
	Fields  map[string]string `json:"fields,omitempty"`
}

// auditQueue bounds the records waiting for the writer: a stalled disk
// never stalls IKE or the data path; what does not fit is counted.
const auditQueue = 1024

// audit writes records as JSON lines to log.audit (a file, or - for
// stdout) from one goroutine, and counts every event for the metrics.
type audit struct {
	log     *zap.Logger
	metrics *metrics

	mu      sync.Mutex
	q       chan AuditRecord // nil: no audit file
	w       io.WriteCloser
	lost    atomic.Uint64 // queue full or write failed
	lastErr time.Time
}

func newAudit(log *zap.Logger, m *metrics) *audit { return &audit{log: log, metrics: m} }

// open starts writing to path ("" none, "-" stdout). The file is created
// 0640 if missing and appended to.
func (a *audit) open(path string) error {
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
	q := make(chan AuditRecord, auditQueue)
	a.mu.Lock()
	a.q, a.w = q, w
	a.mu.Unlock()
	go a.write(q, w)
	return nil
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// close stops the writer after the queued records.
func (a *audit) close() {
	a.mu.Lock()
	q := a.q
	a.q = nil
	a.mu.Unlock()
	if q != nil {
		close(q)
	}
}

func (a *audit) write(q chan AuditRecord, w io.WriteCloser) {
	defer w.Close()
	for r := range q {
		b, err := json.Marshal(r)
		if err == nil {
			_, err = w.Write(append(b, '\n'))
		}
		if err != nil {
			a.lost.Add(1)
			a.metrics.auditLost.Inc()
			// Once a minute at most: a full disk must not flood the log.
			if time.Since(a.lastErr) > time.Minute {
				a.lastErr = time.Now()
				a.log.Error("audit log write failed; records are being lost, forwarding goes on", zap.Error(err), zap.Uint64("lost", a.lost.Load()))
			}
		}
	}
}

// emit counts an event and queues it for the audit file.
func (a *audit) emit(r AuditRecord) {
	if r.Time.IsZero() {
		r.Time = time.Now().UTC()
	}
	r.Event = eventNames[r.ID]
	a.metrics.event(r)
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.q == nil {
		return
	}
	select {
	case a.q <- r:
	default:
		a.lost.Add(1)
		a.metrics.auditLost.Inc()
	}
}

// fromIKE makes the record of an engine event.
func fromIKE(e ike.Event) AuditRecord {
	r := AuditRecord{ID: e.ID, Tunnel: e.Peer, Reason: e.Reason, Message: e.Message}
	if e.Remote.IsValid() {
		r.Remote = e.Remote.String()
	}
	if e.Child != nil {
		r.Fields = map[string]string{"in_spi": fmt.Sprintf("%#08x", e.Child.InSPI), "out_spi": fmt.Sprintf("%#08x", e.Child.OutSPI),
			"suite": e.Child.Suite.String(), "rekey": strconv.FormatBool(e.Rekey)}
	}
	return r
}
