// Command testplugin is an authenticator for pluginhost's tests. When a file
// named after the binary plus ".crash" exists, it exits 100ms after starting.
package main

import (
	"context"
	"os"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/gatehouse/gatehouse/plugins/sdk"
)

type auth struct{ sdk.UnimplementedAuthenticator }

func (auth) Info(context.Context) (sdk.AuthenticatorInfo, error) {
	return sdk.AuthenticatorInfo{Info: sdk.Info{Name: "testplugin"}, Methods: []sdk.AuthMethod{sdk.MethodPSK}}, nil
}

func (auth) Configure(_ context.Context, c sdk.AuthConfig) ([]string, error) {
	if c.UsersFile == "refuse" {
		return nil, sdk.ErrInvalid
	}
	return nil, nil
}

func main() {
	self, _ := os.Executable()
	if _, err := os.Stat(self + ".crash"); err == nil {
		go func() { time.Sleep(100 * time.Millisecond); os.Exit(7) }()
	}
	sdk.Serve(sdk.Impl{Authenticator: auth{}}, hclog.New(&hclog.LoggerOptions{JSONFormat: true, Output: os.Stderr}))
}
