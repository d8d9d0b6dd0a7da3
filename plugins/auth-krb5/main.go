// Command auth-krb5 is Gatehouse's Kerberos authenticator plugin: IKE's
// GSS-API method with computer tickets. The core starts it; it is not
// run by hand.
package main

import (
	"github.com/hashicorp/go-hclog"

	"github.com/gatehouse/gatehouse/plugins/sdk"
)

func main() {
	sdk.Main("auth-krb5", version, func(log hclog.Logger) sdk.Impl { return sdk.Impl{Authenticator: newKrbAuth(log)} })
}
