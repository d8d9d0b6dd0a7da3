// Command radius is Gatehouse's RADIUS plugin: remote-access users (PPP
// PAP, CHAP and MS-CHAPv2) checked by RADIUS servers. The core starts it
// when remote_access.ppp.radius is configured; it is not run by hand.
package main

import (
	"github.com/hashicorp/go-hclog"

	"github.com/gatehouse/gatehouse/plugins/sdk"
)

func main() {
	sdk.Main("radius", version, func(log hclog.Logger) sdk.Impl { return sdk.Impl{Authenticator: newRadiusAuth(log)} })
}
