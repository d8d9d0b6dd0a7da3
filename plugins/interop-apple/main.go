// Command interop-apple is Gatehouse's vendor-interop plugin for Apple
// clients (docs/interop.md). The core starts it; it is not run by hand.
package main

import (
	"github.com/hashicorp/go-hclog"

	"github.com/gatehouse/gatehouse/plugins/interop"
	"github.com/gatehouse/gatehouse/plugins/sdk"
)

const version = "0.1.0"

func main() {
	sdk.Main("interop-apple", version, func(hclog.Logger) sdk.Impl { return sdk.Impl{Interop: interop.NewApple()} })
}
