package main

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"

	"github.com/gatehouse/gatehouse/core/config"
	"github.com/gatehouse/gatehouse/core/firewall"
	"github.com/gatehouse/gatehouse/core/policy"
	pb "github.com/gatehouse/gatehouse/proto/gen/gatehouse/admin/v1"
)

func firewallCommand(g *globals) *cobra.Command {
	var file string
	var tunnelOnly bool
	cmd := &cobra.Command{
		Use:   "firewall [--config FILE] [--tunnel-only]",
		Short: "Print the nftables rules the configuration needs",
		Long: `Print an nftables script for the host gatehoused runs on, made from the
configuration gatehoused has loaded (or from --config FILE, without asking
the daemon):

  - UDP 500 and 4500 and IP protocols 50 and 51 (ESP, AH) from the peers,
    or from anywhere when remote access is configured (KB Q233256);
    from hosts that are no peer, they are dropped;
  - UDP 1701 dropped: L2TP only inside IPsec (the core takes it out of ESP
    itself), unless remote_access.allow_cleartext_l2tp is set;
  - Kerberos (TCP and UDP 88) out to the KDC when a kerberos method is used;
  - with --tunnel-only, "tunnel only" filtering (KB 252735): what the
    policy says must be negotiated passes only through the TUN, in both
    directions. gatehoused enforces inbound cleartext itself while it runs
    (its own table, inet gatehouse); these rules also hold while it does
    not, so a stopped daemon fails closed.

The rules go in their own table, inet gatehouse_host, whose chains accept
by default: they add drops and counters, and never cut off what the host's
own ruleset allows. Loading the script again replaces the table. Check it
with nft -c -f before loading it.`,
		Example: `  gatehouse firewall > /etc/nftables.d/gatehouse.nft && nft -f /etc/nftables.d/gatehouse.nft
  gatehouse firewall --config /etc/gatehouse/gatehouse.yaml --tunnel-only | nft -c -f -`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				err := call(g, io.Discard, func(ctx context.Context, c pb.AdminClient) (proto.Message, func(io.Writer), error) {
					r, err := c.Status(ctx, &pb.StatusRequest{})
					file = r.GetConfigFile()
					return r, func(io.Writer) {}, err
				})
				if err != nil {
					return cliError{exitNoDaemon, fmt.Errorf("%w; or give --config FILE", err)}
				}
			}
			c, err := config.Load(file)
			if err != nil {
				return cliError{exitFailure, err}
			}
			pol, err := policy.FromConfig(c)
			if err != nil {
				return cliError{exitFailure, fmt.Errorf("%s: policy: %w", file, err)}
			}
			fmt.Fprint(cmd.OutOrStdout(), firewall.Rules(c, pol, firewall.Options{TunnelOnly: tunnelOnly}))
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "config", "c", "", "configuration file to read (default: the one gatehoused has loaded)")
	cmd.Flags().BoolVar(&tunnelOnly, "tunnel-only", false, "also drop cleartext between the subnets each tunnel protects (KB 252735)")
	return cmd
}
