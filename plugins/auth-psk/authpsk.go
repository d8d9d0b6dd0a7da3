package main

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/hashicorp/go-hclog"

	"github.com/gatehouse/gatehouse/auth/psk"
	"github.com/gatehouse/gatehouse/plugins/sdk"
)

const version = "0.1.0"

// pskAuth serves IKE preshared-key lookups from key files.
type pskAuth struct {
	sdk.UnimplementedAuthenticator
	log hclog.Logger

	mu    sync.RWMutex
	store *psk.Store
}

var _ sdk.Authenticator = (*pskAuth)(nil)

func (a *pskAuth) Info(context.Context) (sdk.AuthenticatorInfo, error) {
	return sdk.AuthenticatorInfo{
		Info:    sdk.Info{Name: "auth-psk", Version: version, Description: "IKE preshared keys from key files"},
		Methods: []sdk.AuthMethod{sdk.MethodPSK},
	}, nil
}

// Configure loads every key file. A bad file refuses the whole new
// configuration and keeps the keys already loaded.
func (a *pskAuth) Configure(_ context.Context, cfg sdk.AuthConfig) ([]string, error) {
	entries := make([]psk.Entry, 0, len(cfg.PSK))
	for _, e := range cfg.PSK {
		entries = append(entries, psk.Entry{Name: e.Name, KeyFile: e.KeyFile, ID: e.MatchID, Prefix: e.MatchAddress, Wildcard: e.Wildcard})
	}
	store, err := psk.Load(entries)
	if err != nil {
		a.log.Error("configuration refused; keeping previous keys", "error", err)
		return nil, fmt.Errorf("%w: %v", sdk.ErrInvalid, err)
	}
	a.mu.Lock()
	a.store = store
	a.mu.Unlock()
	a.log.Info("keys loaded", "entries", store.Len())
	var warnings []string
	if len(cfg.X509) > 0 || len(cfg.Kerberos) > 0 {
		warnings = append(warnings, "auth-psk serves preshared keys only; certificate and Kerberos profiles need their own plugins")
	}
	return warnings, nil
}

func (a *pskAuth) LookupPSK(_ context.Context, req sdk.PSKRequest) (sdk.PSKResult, error) {
	a.mu.RLock()
	store := a.store
	a.mu.RUnlock()
	if store == nil {
		return sdk.PSKResult{}, fmt.Errorf("%w: not configured yet", sdk.ErrUnavailable)
	}
	id := ""
	if req.PeerID != nil {
		id = psk.FormatID(req.PeerID.Type, req.PeerID.Data)
	}
	key, entry, err := store.Lookup(req.Peer.Addr(), id)
	if errors.Is(err, psk.ErrNotFound) {
		a.log.Info("no key for peer", "peer", req.Peer.String(), "id", id)
		return sdk.PSKResult{Found: false}, nil
	}
	if err != nil {
		return sdk.PSKResult{}, err
	}
	return sdk.PSKResult{Found: true, Key: key.Bytes(), Entry: entry}, nil
}
