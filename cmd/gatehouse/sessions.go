package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"

	pb "github.com/gatehouse/gatehouse/proto/gen/gatehouse/admin/v1"
)

func sessionCommands(g *globals) []*cobra.Command {
	return []*cobra.Command{
		{
			Use:   "sessions",
			Short: "List remote-access users connected: protocol, address, outer address, since, bytes",
			Long: `List the remote-access users connected now, L2TP/IPsec and IKEv2 alike: user
name, how they connected (l2tp or ikev2), the address they were given, their
outer address (with the NAT-T port when a NAT is in the way), when they
connected, how long since they last sent, and the bytes and packets of their
inner traffic in each direction (in: from the client). An IKEv2 client that
logged in by preshared key or certificate is named by its IKE identity
(fqdn:phone.example.net).
The last line says how much of the address pool is in use, followed by a
count of L2TP and PPP control packets dropped on their way to the l2tp
plugin, when there were any.`,
			Example: "  gatehouse sessions\n  gatehouse sessions --json | jq '.sessions[] | select(.user == \"alice\")'",
			Args:    cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				return call(g, cmd.OutOrStdout(), func(ctx context.Context, c pb.AdminClient) (proto.Message, func(io.Writer), error) {
					r, err := c.Sessions(ctx, &pb.SessionsRequest{})
					return r, func(w io.Writer) { printSessions(w, r) }, err
				})
			},
		},
		{
			Use:   "disconnect USER|ADDRESS",
			Short: "End the sessions of a remote-access user or client address",
			Long: `End every session of USER (names match without regard to case), or the
session holding client ADDRESS; exit status 1 if no session matched.

An L2TP/IPsec session leaves the data path at once and its address goes back
to the pool; the client is told with an LCP Terminate-Request and an L2TP
Call-Disconnect-Notify. Its IKE SA stays (the client may dial again).

An IKEv2 client is sent a delete of its IKE SA, which ends its tunnel; its
address goes back to the pool.`,
			Example: "  gatehouse disconnect alice\n  gatehouse disconnect 10.8.0.23",
			Args:    cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				return call(g, cmd.OutOrStdout(), func(ctx context.Context, c pb.AdminClient) (proto.Message, func(io.Writer), error) {
					r, err := c.Disconnect(ctx, &pb.DisconnectRequest{Target: args[0]})
					return r, func(w io.Writer) {
						for _, s := range r.GetEnded() {
							fmt.Fprintf(w, "disconnected %s (%s, from %s): %d bytes in, %d bytes out\n", s.User, s.Address, s.Outer, s.BytesIn, s.BytesOut)
						}
					}, err
				})
			},
		},
	}
}

func printSessions(w io.Writer, r *pb.SessionsResponse) {
	if !r.RemoteAccess {
		fmt.Fprintln(w, "remote access is not configured (remote_access in the configuration)")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "USER\tPROTOCOL\tADDRESS\tOUTER\tSINCE\tIDLE\tBYTES IN\tBYTES OUT\tPACKETS IN\tPACKETS OUT")
	clear := 0
	for _, s := range r.Sessions {
		since := time.Unix(s.SinceUnix, 0)
		outer := s.Outer
		if s.Cleartext {
			outer += " (no IPsec)"
			clear++
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s (%s)\t%ds\t%d\t%d\t%d\t%d\n", s.User, cmp.Or(s.Protocol, "l2tp"), s.Address, outer, since.Format("15:04:05"),
			time.Since(since).Round(time.Second), s.IdleSeconds, s.BytesIn, s.BytesOut, s.PacketsIn, s.PacketsOut)
	}
	tw.Flush()
	fmt.Fprintf(w, "%d sessions; pool %s: %d of %d addresses in use\n", len(r.Sessions), r.Pool, r.PoolUsed, r.PoolSize)
	if clear > 0 {
		fmt.Fprintf(w, "%d sessions use L2TP without IPsec: their traffic and PPP logins cross the network unencrypted\n", clear)
	}
	if r.ControlDropped > 0 {
		fmt.Fprintf(w, "%d control packets dropped on the way to the l2tp plugin (queue full or plugin restarting; clients retransmit)\n", r.ControlDropped)
	}
}
