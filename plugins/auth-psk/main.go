// Command auth-psk is Gatehouse's preshared-key authenticator plugin. The
// core starts it; it is not run by hand.
package main

import (
	"github.com/hashicorp/go-hclog"

	"github.com/gatehouse/gatehouse/plugins/sdk"
)

func main() {
	sdk.Main("auth-psk", version, func(log hclog.Logger) sdk.Impl { return sdk.Impl{Authenticator: &pskAuth{log: log}} })
}
