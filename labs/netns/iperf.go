package netns

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/internal/await"
)

// Iperf runs an iperf3 TCP test of duration d from client to a one-off
// server bound to addr in server, and returns the received Mbit/s.
func Iperf(server, client *NS, addr string, d time.Duration) (float64, error) {
	return IperfFrom(server, client, addr, "", d)
}

// IperfFrom is Iperf with the client bound to src (empty: the address
// the route picks).
func IperfFrom(server, client *NS, addr, src string, d time.Duration) (float64, error) {
	r, err := IperfRun(server, client, addr, src, d)
	return r.Mbps, err
}

// IperfResult is one iperf3 run: the received Mbit/s over the run, and
// the Mbit/s the client sent in each second of it.
type IperfResult struct {
	Mbps      float64
	Intervals []float64
}

// IperfRun is IperfFrom with the second-by-second figures, to find
// stalls.
func IperfRun(server, client *NS, addr, src string, d time.Duration) (IperfResult, error) {
	srv, err := server.Start("iperf3", "-s", "-1", "-B", addr)
	if err != nil {
		return IperfResult{}, err
	}
	defer srv.Stop(2 * time.Second)
	// Its output is buffered in a pipe: ask the socket table instead.
	listening := func() (bool, string) {
		out, err := server.Output(5*time.Second, "ss", "-Hltn", "sport = :5201")
		return err == nil && strings.TrimSpace(out) != "", out
	}
	if ok, _ := await.Poll(10*time.Second, listening); !ok {
		return IperfResult{}, fmt.Errorf("iperf3 server on %s did not listen:\n%s", addr, srv.Output())
	}
	args := []string{"-c", addr, "-t", fmt.Sprint(int(d.Seconds())), "-J"}
	if src != "" {
		args = append(args, "-B", src)
	}
	out, err := client.Output(d+30*time.Second, "iperf3", args...)
	if err != nil {
		return IperfResult{}, fmt.Errorf("iperf3 to %s: %v\n%s", addr, err, out)
	}
	type rate struct {
		BitsPerSecond float64 `json:"bits_per_second"`
	}
	var r struct {
		Intervals []struct {
			Sum rate `json:"sum"`
		} `json:"intervals"`
		End struct {
			SumReceived rate `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil || r.End.SumReceived.BitsPerSecond <= 0 {
		return IperfResult{}, fmt.Errorf("iperf3 result: %v\n%s", err, out)
	}
	res := IperfResult{Mbps: r.End.SumReceived.BitsPerSecond / 1e6}
	for _, i := range r.Intervals {
		res.Intervals = append(res.Intervals, i.Sum.BitsPerSecond/1e6)
	}
	return res, nil
}
