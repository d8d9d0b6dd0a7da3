package netns

import (
	"encoding/json"
	"fmt"
	"time"
)

// Iperf runs an iperf3 TCP test of duration d from client to a one-off
// server bound to addr in server, and returns the received Mbit/s.
func Iperf(server, client *NS, addr string, d time.Duration) (float64, error) {
	srv, err := server.Start("iperf3", "-s", "-1", "-B", addr)
	if err != nil {
		return 0, err
	}
	defer srv.Stop(2 * time.Second)
	var out string
	for i := 0; i < 30; i++ { // the server needs a moment to listen
		time.Sleep(100 * time.Millisecond)
		if out, err = client.Output(d+30*time.Second, "iperf3", "-c", addr, "-t", fmt.Sprint(int(d.Seconds())), "-J"); err == nil {
			break
		}
	}
	if err != nil {
		return 0, fmt.Errorf("iperf3 to %s: %v\n%s", addr, err, out)
	}
	var r struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil || r.End.SumReceived.BitsPerSecond <= 0 {
		return 0, fmt.Errorf("iperf3 result: %v\n%s", err, out)
	}
	return r.End.SumReceived.BitsPerSecond / 1e6, nil
}
