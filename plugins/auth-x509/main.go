// Command auth-x509 is Gatehouse's certificate authenticator plugin. The
// core starts it; it is not run by hand.
package main

import (
	"github.com/hashicorp/go-hclog"

	"github.com/gatehouse/gatehouse/plugins/sdk"
)

func main() {
	sdk.Main("auth-x509", version, func(log hclog.Logger) sdk.Impl { return sdk.Impl{Authenticator: newX509Auth(log)} })
}
