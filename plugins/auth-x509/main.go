// Command auth-x509 is Gatehouse's certificate authenticator plugin. The
// core starts it; it is not run by hand.
package main

import (
	"fmt"
	"os"

	"github.com/hashicorp/go-hclog"

	"github.com/gatehouse/gatehouse/plugins/sdk"
)

func main() {
	if len(os.Args) > 1 && (os.Args[1] == "--version" || os.Args[1] == "-v") {
		fmt.Println("auth-x509", version)
		return
	}
	log := hclog.New(&hclog.LoggerOptions{Name: "auth-x509", Level: hclog.Info, JSONFormat: true, Output: os.Stderr})
	sdk.Serve(sdk.Impl{Authenticator: newX509Auth(log)}, log)
}
