// Command gatehouse is the Gatehouse command-line tool: it talks to a running
// gatehoused over its admin socket.
package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	pb "github.com/gatehouse/gatehouse/proto/gen/gatehouse/admin/v1"
)

// Exit codes (documented in README.md).
const (
	exitOK       = 0
	exitFailure  = 1 // the daemon answered with a failure (e.g. reload refused)
	exitUsage    = 2
	exitNoDaemon = 3 // could not reach gatehoused
)

type globals struct {
	socket  string
	json    bool
	timeout time.Duration
}

type cliError struct {
	code int
	err  error
}

func (e cliError) Error() string { return e.err.Error() }

func main() {
	g := &globals{}
	root := rootCommand(g)
	root.AddCommand(statusCommand(g), policyCommand(g), pluginsCommand(g), saCommand(g), upCommand(g), downCommand(g), reloadCommand(g),
		connectCommand(), pkiCommand(), firewallCommand(g))
	root.AddCommand(sessionCommands(g)...)
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "gatehouse:", err)
		var ce cliError
		if errors.As(err, &ce) {
			os.Exit(ce.code)
		}
		if strings.Contains(err.Error(), "unknown command") || strings.Contains(err.Error(), "accepts") {
			os.Exit(exitUsage)
		}
		os.Exit(exitFailure)
	}
	os.Exit(exitOK)
}

// rootCommand is gatehouse itself, with the flags every command shares.
func rootCommand(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use: "gatehouse",
		Example: `  gatehouse status
  gatehouse sa --json | jq '.ikeSas[] | {tunnel, remote, family}'
  gatehouse --socket /tmp/lab/admin.sock sessions`,
		Short: "Control a running Gatehouse VPN server",
		Long: `gatehouse talks to gatehoused over its admin socket (admin_socket in the
configuration, default /run/gatehouse/admin.sock; readable by root only).

Exit status:
  0  success
  1  the server answered with a failure (for example, a reload was refused)
  2  bad command line
  3  the server could not be reached`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	def := os.Getenv("GATEHOUSE_SOCKET")
	if def == "" {
		def = "/run/gatehouse/admin.sock"
	}
	root.PersistentFlags().StringVarP(&g.socket, "socket", "s", def, "admin socket of gatehoused (env GATEHOUSE_SOCKET)")
	root.PersistentFlags().BoolVar(&g.json, "json", false, "print JSON for scripts instead of text for people")
	root.PersistentFlags().DurationVar(&g.timeout, "timeout", 10*time.Second, "how long to wait for gatehoused")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return cliError{exitUsage, err} })
	return root
}

// statusCommand is gatehouse status.
func statusCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "status",
		Short:   "Show the server's version, configuration and counts",
		Example: "  gatehouse status\n  gatehouse status --socket /tmp/lab/admin.sock",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return call(g, cmd.OutOrStdout(), func(ctx context.Context, c pb.AdminClient) (proto.Message, func(io.Writer), error) {
				r, err := c.Status(ctx, &pb.StatusRequest{})
				return r, func(w io.Writer) { printStatus(w, r) }, err
			})
		},
	}
}

// policyCommand is gatehouse policy show.
func policyCommand(g *globals) *cobra.Command {
	policy := &cobra.Command{Use: "policy", Short: "Show the IPsec policy in force"}
	policy.AddCommand(&cobra.Command{
		Use:   "show",
		Short: "Print every applied filter, one block each, most specific first",
		Long: `Print the filters gatehoused applies, in the order they are matched (most
specific first; ties in rule order), one block per filter with the fields
Windows' netdiag /test:ipsec showed: source and destination with masks,
protocol and ports, direction, mode and tunnel endpoint, action, offers in
preference order, PFS, and authentication methods in order.`,
		Example: "  gatehouse policy show\n  gatehouse policy show --json | jq '.filters[] | select(.mode == \"tunnel\")'",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return call(g, cmd.OutOrStdout(), func(ctx context.Context, c pb.AdminClient) (proto.Message, func(io.Writer), error) {
				r, err := c.PolicyShow(ctx, &pb.PolicyShowRequest{})
				return r, func(w io.Writer) { printPolicy(w, r) }, err
			})
		},
	})
	return policy
}

// pluginsCommand is gatehouse plugins.
func pluginsCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "plugins",
		Short: "List plugins: state, process, kinds served and restarts",
		Long: `List the plugins gatehoused supervises. A plugin that dies is restarted (at
once, then with growing backoff if it keeps dying); RESTARTS counts
successful restarts and LAST EXIT says how the previous process ended.`,
		Example: "  gatehouse plugins",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return call(g, cmd.OutOrStdout(), func(ctx context.Context, c pb.AdminClient) (proto.Message, func(io.Writer), error) {
				r, err := c.Plugins(ctx, &pb.PluginsRequest{})
				return r, func(w io.Writer) { printPlugins(w, r) }, err
			})
		},
	}
}

// saCommand is gatehouse sa.
func saCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "sa",
		Short: "List installed SAs with their counters (never keys)",
		Long: `List every installed SA: name, direction, SPI, protocol and mode, algorithms,
local and peer addresses (with port 4500 when UDP-encapsulated), packets and
bytes, replay and integrity drops, age and lifetime left. Then the data
path's counters, with every drop by reason.`,
		Example: "  gatehouse sa\n  gatehouse sa --json | jq '.sas[] | select(.replayDrops != \"0\")'",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return call(g, cmd.OutOrStdout(), func(ctx context.Context, c pb.AdminClient) (proto.Message, func(io.Writer), error) {
				r, err := c.SAs(ctx, &pb.SAsRequest{})
				return r, func(w io.Writer) { printSAs(w, r) }, err
			})
		},
	}
}

// upCommand is gatehouse up TUNNEL.
func upCommand(g *globals) *cobra.Command {
	return tunnelCommand(g, "up", "Start a tunnel's IKE negotiation now",
		`Start main mode (if no IKE SA is up) and quick mode with the tunnel's peer,
without waiting for traffic. The command returns at once; follow progress with
gatehouse sa or the log. Exit status 1 if there is no such tunnel.`,
		func(ctx context.Context, c pb.AdminClient, r *pb.TunnelRequest) (*pb.TunnelResponse, error) {
			return c.Up(ctx, r)
		})
}

// downCommand is gatehouse down TUNNEL.
func downCommand(g *globals) *cobra.Command {
	return tunnelCommand(g, "down", "Delete a tunnel's SAs, telling the peer",
		`Send the peer deletes for the tunnel's IPsec SAs and its IKE SA, and remove
them here. Traffic for the tunnel then starts a new negotiation if the tunnel
starts on traffic (the default). Exit status 1 if nothing was up.`,
		func(ctx context.Context, c pb.AdminClient, r *pb.TunnelRequest) (*pb.TunnelResponse, error) {
			return c.Down(ctx, r)
		})
}

// reloadCommand is gatehouse reload.
func reloadCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "reload",
		Short: "Re-read the configuration file (like SIGHUP)",
		Long: `Ask gatehoused to re-read its configuration. A configuration with any error
is refused whole, the reason is printed, and the configuration in force keeps
running; exit status 1 then.`,
		Example: "  gatehouse reload",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var failed error
			err := call(g, cmd.OutOrStdout(), func(ctx context.Context, c pb.AdminClient) (proto.Message, func(io.Writer), error) {
				r, err := c.Reload(ctx, &pb.ReloadRequest{})
				if err == nil && !r.Applied {
					failed = cliError{exitFailure, errors.New(r.Error)}
				}
				return r, func(w io.Writer) { printReload(w, r) }, err
			})
			if err != nil {
				return err
			}
			return failed
		},
	}
}

// call dials the socket, runs one request and prints the answer.
func call(g *globals, out io.Writer, fn func(context.Context, pb.AdminClient) (proto.Message, func(io.Writer), error)) error {
	if _, err := os.Stat(g.socket); err != nil {
		return cliError{exitNoDaemon, fmt.Errorf("cannot reach gatehoused: %s: %w (is it running? is --socket right?)", g.socket, errors.Unwrap(err))}
	}
	conn, err := grpc.NewClient("unix://"+g.socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return cliError{exitNoDaemon, fmt.Errorf("cannot reach gatehoused at %s: %w", g.socket, err)}
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), g.timeout)
	defer cancel()
	msg, text, err := fn(ctx, pb.NewAdminClient(conn))
	if st, ok := status.FromError(err); ok && st.Code() == codes.FailedPrecondition {
		return cliError{exitFailure, errors.New(st.Message())} // the daemon answered: the request itself failed
	}
	if err != nil {
		return cliError{exitNoDaemon, fmt.Errorf("gatehoused at %s: %w", g.socket, err)}
	}
	if g.json {
		b, err := protojson.MarshalOptions{Multiline: true, EmitUnpopulated: true}.Marshal(msg)
		if err != nil {
			return err
		}
		var v any
		_ = json.Unmarshal(b, &v)
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	text(out)
	return nil
}

func ago(unix int64) string {
	if unix == 0 {
		return "-"
	}
	t := time.Unix(unix, 0)
	return fmt.Sprintf("%s (%s ago)", t.Format(time.RFC3339), time.Since(t).Round(time.Second))
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func printStatus(w io.Writer, r *pb.StatusResponse) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "Version\t%s\n", r.Version)
	fmt.Fprintf(tw, "Running since\t%s\n", ago(r.StartedUnix))
	fmt.Fprintf(tw, "Configuration\t%s\n", r.ConfigFile)
	fmt.Fprintf(tw, "Loaded\t%s, %d reload(s)\n", ago(r.ConfigLoadedUnix), r.Reloads)
	if r.LastReloadError != "" {
		fmt.Fprintf(tw, "Last reload\tREFUSED: %s\n", firstLine(r.LastReloadError))
	}
	fmt.Fprintf(tw, "Listening on\t%s\n", strings.Join(r.Listen, ", "))
	fmt.Fprintf(tw, "Policy\t%d rules, %d filters, exemptions %s\n", r.Rules, r.Filters, r.Exemptions)
	fmt.Fprintf(tw, "Site-to-site tunnels\t%d\n", r.Tunnels)
	ra := "off"
	switch {
	case r.RemoteAccessIkev2:
		ra = "enabled (L2TP/IPsec and IKEv2)"
	case r.RemoteAccess:
		ra = "enabled (L2TP/IPsec)"
	}
	fmt.Fprintf(tw, "Remote access\t%s\n", ra)
	fmt.Fprintf(tw, "Plugins\t%d of %d running\n", r.PluginsRunning, r.PluginsTotal)
	fmt.Fprintf(tw, "Memory\t%.1f MiB resident, %.1f MiB live heap, %d goroutines\n", float64(r.RssBytes)/(1<<20), float64(r.HeapLiveBytes)/(1<<20), r.Goroutines)
	tw.Flush()
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " ..."
	}
	return s
}

func printPolicy(w io.Writer, r *pb.PolicyShowResponse) {
	exempt := "none"
	if len(r.Exempt) > 0 {
		exempt = strings.Join(r.Exempt, ", ")
	}
	fmt.Fprintf(w, "Exemptions: %s (%s)\n", r.Exemptions, exempt)
	fmt.Fprintf(w, "%d filters, most specific first.\n", len(r.Filters))
	for i, f := range r.Filters {
		fmt.Fprintf(w, "\nFilter %d: rule %s (%s)\n", i+1, f.Rule, f.Origin)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "  Direction\t%s\n", f.Direction)
		fmt.Fprintf(tw, "  Source\t%s\tmask %s\n", f.Source, f.SourceMask)
		fmt.Fprintf(tw, "  Destination\t%s\tmask %s\n", f.Destination, f.DestinationMask)
		fmt.Fprintf(tw, "  Protocol\t%s\tsrc port %d, dst port %d\n", f.Protocol, f.SourcePort, f.DestinationPort)
		mirrored := yesNo(f.Mirrored)
		if f.Reverse {
			mirrored += " (this is the generated reverse filter)"
		}
		fmt.Fprintf(tw, "  Mirrored\t%s\n", mirrored)
		fmt.Fprintf(tw, "  Action\t%s\n", f.Action)
		if f.Action == "negotiate" {
			mode := f.Mode
			if f.TunnelEndpoint != "" {
				mode += ", endpoint " + f.TunnelEndpoint
			}
			fmt.Fprintf(tw, "  Mode\t%s\n", mode)
			for j, o := range f.Offers {
				label := ""
				if j == 0 {
					label = "Offers"
				}
				alg := o.Encryption
				if o.Integrity != "" {
					if alg != "" {
						alg += "-"
					}
					alg += o.Integrity
				}
				kb := "no KB limit"
				if o.LifetimeKilobytes > 0 {
					kb = fmt.Sprintf("%d KB", o.LifetimeKilobytes)
				}
				fmt.Fprintf(tw, "  %s\t%d. %s %s\t%d s, %s\n", label, j+1, strings.ToUpper(o.Protocol), alg, o.LifetimeSeconds, kb)
			}
			fmt.Fprintf(tw, "  PFS\t%s\n", f.Pfs)
			fmt.Fprintf(tw, "  Accept unsecured\t%s\n", yesNo(f.AcceptUnsecured))
			for j, a := range f.AuthMethods {
				label := ""
				if j == 0 {
					label = "Authentication"
				}
				fmt.Fprintf(tw, "  %s\t%d. %s\n", label, j+1, a)
			}
		}
		fmt.Fprintf(tw, "  Weight\t%d\n", f.Weight)
		tw.Flush()
	}
}

func printPlugins(w io.Writer, r *pb.PluginsResponse) {
	if len(r.Plugins) == 0 {
		fmt.Fprintln(w, "No plugins loaded.")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATE\tPID\tKINDS\tRESTARTS\tUP SINCE\tLAST EXIT")
	for _, p := range r.Plugins {
		pid, since, exit := "-", "-", "-"
		if p.Pid > 0 {
			pid = fmt.Sprint(p.Pid)
		}
		if p.SinceUnix > 0 {
			since = time.Unix(p.SinceUnix, 0).Format("15:04:05")
		}
		if p.LastExit != "" {
			exit = p.LastExit
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", p.Name, p.State, pid, strings.Join(p.Kinds, ","), p.Restarts, since, exit)
	}
	tw.Flush()
	for _, p := range r.Plugins {
		if p.LastError != "" {
			fmt.Fprintf(w, "%s: last error: %s\n", p.Name, p.LastError)
		}
	}
}

func printReload(w io.Writer, r *pb.ReloadResponse) {
	if !r.Applied {
		fmt.Fprintln(w, "Reload refused; the previous configuration stays in force.")
		return
	}
	if len(r.Changes) == 0 {
		fmt.Fprintln(w, "Reloaded: no changes.")
		return
	}
	fmt.Fprintln(w, "Reloaded:")
	for _, c := range r.Changes {
		fmt.Fprintln(w, "  "+c)
	}
}

func printSAs(w io.Writer, r *pb.SAsResponse) {
	if !r.Dataplane {
		fmt.Fprintln(w, "No data path is running: the configuration has no SAs to carry (no tunnels, no manual_sas).")
		return
	}
	if len(r.IkeSas) > 0 {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "IKE SA	STATE	ROLE	VERSION	LOCAL	REMOTE	PROPOSAL	NAT	CHILDREN	AGE	SPIS	AUTH	PEER	CLIENT")
		for _, s := range r.IkeSas {
			state, role, nat := "negotiating", "responder", "no"
			if s.Established {
				state = "established"
			}
			if s.Expired {
				state = "expired" // kept for its IPsec SAs only
			}
			if s.Initiator {
				role = "initiator"
			}
			if s.Nat {
				nat = "yes"
			}
			client := "-" // no interop plugin knew the peer
			if s.Family != "" {
				client = fmt.Sprintf("%s (%s, by %s)", s.Family, s.FamilyDetail, s.InteropPlugin)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\tIKEv%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n", s.Tunnel, state, role, max(s.Version, 1), s.Local, s.Remote, s.Proposal, nat,
				s.Children, (time.Duration(s.AgeSeconds) * time.Second).String(), s.Cookies, s.Auth, cmp.Or(s.PeerId, "-"), client)
		}
		tw.Flush()
		fmt.Fprintln(w)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tDIR\tSPI\tMODE\tSUITE\tLOCAL\tPEER\tPACKETS\tBYTES\tREPLAY\tAUTH-FAIL\tAGE\tLIFETIME LEFT")
	for _, s := range r.Sas {
		left := "unlimited"
		if s.LifetimeLeftSeconds >= 0 {
			left = (time.Duration(s.LifetimeLeftSeconds) * time.Second).String()
		}
		suite := strings.ToUpper(s.Protocol) + " " + s.Suite
		if s.Esn {
			suite += " esn"
		}
		mode := s.Mode
		if s.UdpEncap {
			mode += "/udp"
		}
		fmt.Fprintf(tw, "%s\t%s\t%#08x\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\t%s\n", s.Name, s.Direction, s.Spi, mode, suite,
			s.Local, s.Peer, s.Packets, s.Bytes, s.ReplayDrops, s.AuthFailures, (time.Duration(s.AgeSeconds) * time.Second).String(), left)
	}
	tw.Flush()
	for _, s := range r.Sas {
		if len(s.Selectors) > 0 {
			fmt.Fprintf(w, "%s %s %#08x selectors: %s\n", s.Name, s.Direction, s.Spi, strings.Join(s.Selectors, "; "))
		}
	}
	fmt.Fprintf(w, "\nData path: %d sent, %d received, %d forwarded in clear, %d NAT keepalives\n", r.Sent, r.Received, r.ClearForwarded, r.Keepalives)
	fmt.Fprintf(w, "TUN: %d packets in %d reads, %d packets in %d writes\n", r.TunPackets, r.TunReads, r.TunWritten, r.TunWrites)
	if r.ClearL2Tp > 0 {
		fmt.Fprintf(w, "Cleartext L2TP: %d datagrams received without IPsec\n", r.ClearL2Tp)
	}
	if len(r.Drops) == 0 {
		fmt.Fprintln(w, "Drops: none")
		return
	}
	names := make([]string, 0, len(r.Drops))
	for n := range r.Drops {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprint(w, "Drops:")
	for _, n := range names {
		fmt.Fprintf(w, " %s=%d", n, r.Drops[n])
	}
	fmt.Fprintln(w)
}

// tunnelCommand is gatehouse up NAME / down NAME.
func tunnelCommand(g *globals, use, short, long string, rpc func(context.Context, pb.AdminClient, *pb.TunnelRequest) (*pb.TunnelResponse, error)) *cobra.Command {
	return &cobra.Command{
		Use:     use + " NAME",
		Short:   short,
		Long:    long,
		Example: "  gatehouse " + use + " neta-netb",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return call(g, cmd.OutOrStdout(), func(ctx context.Context, c pb.AdminClient) (proto.Message, func(io.Writer), error) {
				r, err := rpc(ctx, c, &pb.TunnelRequest{Name: args[0]})
				return r, func(w io.Writer) {
					fmt.Fprintf(w, "%s: %s\n", args[0], map[string]string{"up": "negotiation started", "down": "SAs deleted"}[use])
				}, err
			})
		},
	}
}
