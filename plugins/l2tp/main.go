// Command l2tp is Gatehouse's L2TP/PPP control plane plugin: the LNS side
// of L2TP/IPsec remote access. The core starts it; it is not run by hand.
package main

import (
	"fmt"
	"os"

	"github.com/hashicorp/go-hclog"

	"github.com/gatehouse/gatehouse/plugins/sdk"
)

const version = "0.1.0"

func main() {
	if len(os.Args) > 1 && (os.Args[1] == "--version" || os.Args[1] == "-v") {
		fmt.Println("l2tp", version)
		return
	}
	log := hclog.New(&hclog.LoggerOptions{Name: "l2tp", Level: hclog.Info, JSONFormat: true, Output: os.Stderr})
	sdk.Serve(sdk.Impl{Tunnel: newLNS(log)}, log)
}
