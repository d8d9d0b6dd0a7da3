// Command l2tp is Gatehouse's L2TP/PPP control plane plugin: the LNS side
// of L2TP/IPsec remote access. The core starts it; it is not run by hand.
package main

import (
	"github.com/hashicorp/go-hclog"

	"github.com/gatehouse/gatehouse/plugins/sdk"
)

const version = "0.1.0"

func main() {
	sdk.Main("l2tp", version, func(log hclog.Logger) sdk.Impl { return sdk.Impl{L2TP: newLNS(log)} })
}
