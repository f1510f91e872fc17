// winrmd-bench: compiled WinRS client for the winrmd benchmarks (bench/run.sh).
//
// It uses github.com/masterzen/winrm (the library Packer and Terraform use),
// pinned to the same version as tests/integration/go, with Basic auth.
//
// Usage: winrmd-bench -port P -user U -pass W [-https] -mode MODE [flags]
//
//	-mode rtt     N x client.Run("true"): Create + Command + Receive + Signal +
//	              Delete, one client (HTTP keep-alive, one PAM check per
//	              connection); with -fresh a new client (new TCP/TLS connection
//	              and PAM check) for every run.
//	-mode cmd     one shell stays open; N x Command "true" + Receive + Signal.
//	-mode stream  N x client.Run("head -c BYTES /dev/zero"), stdout counted
//	              and discarded; reports MB/s (10^6 bytes per second).
//
// Output: one JSON object on stdout:
//
//	{"mode":..., "unit":"ms"|"MB/s", "samples":[...], "median":x, "p95":x, "min":x, "max":x}
//
// Exit status 2 on any client error or wrong result (exit code, byte count).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/masterzen/winrm"
)

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

type result struct {
	Mode    string    `json:"mode"`
	Unit    string    `json:"unit"`
	Samples []float64 `json:"samples"`
	Median  float64   `json:"median"`
	P95     float64   `json:"p95"`
	Min     float64   `json:"min"`
	Max     float64   `json:"max"`
}

func fail(format string, a ...interface{}) {
	fmt.Fprintf(os.Stderr, "winrmd-bench: "+format+"\n", a...)
	os.Exit(2)
}

// quantile by linear interpolation between closest ranks (numpy's default).
func quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	pos := q * float64(len(sorted)-1)
	lo := int(pos)
	if lo+1 >= len(sorted) {
		return sorted[len(sorted)-1]
	}
	frac := pos - float64(lo)
	return sorted[lo] + frac*(sorted[lo+1]-sorted[lo])
}

func main() {
	host := flag.String("host", "127.0.0.1", "server address")
	port := flag.Int("port", 5986, "server port")
	user := flag.String("user", "", "user name")
	pass := flag.String("pass", "", "password (or env WINRMD_BENCH_PASS)")
	https := flag.Bool("https", false, "use HTTPS (certificate not verified)")
	mode := flag.String("mode", "rtt", "rtt | cmd | stream")
	n := flag.Int("n", 30, "measured runs")
	warmup := flag.Int("warmup", 3, "unmeasured runs first")
	fresh := flag.Bool("fresh", false, "rtt: new client (connection + authentication) per run")
	nbytes := flag.Int64("bytes", 200*1024*1024, "stream: bytes to produce")
	command := flag.String("command", "true", "rtt/cmd: command line")
	flag.Parse()
	if *pass == "" {
		*pass = os.Getenv("WINRMD_BENCH_PASS")
	}

	newClient := func() *winrm.Client {
		ep := winrm.NewEndpoint(*host, *port, *https, true, nil, nil, nil, 120*time.Second)
		c, err := winrm.NewClient(ep, *user, *pass)
		if err != nil {
			fail("client: %v", err)
		}
		return c
	}
	client := newClient()

	var samples []float64
	unit := "ms"
	switch *mode {
	case "rtt":
		for i := 0; i < *warmup+*n; i++ {
			c := client
			if *fresh {
				c = newClient()
			}
			var out, errb strings.Builder
			t0 := time.Now()
			code, err := c.Run(*command, &out, &errb)
			el := time.Since(t0)
			if err != nil || code != 0 {
				fail("run %q: code %d err %v stderr %q", *command, code, err, errb.String())
			}
			if i >= *warmup {
				samples = append(samples, float64(el.Nanoseconds())/1e6)
			}
		}
	case "cmd":
		shell, err := client.CreateShell()
		if err != nil {
			fail("create shell: %v", err)
		}
		for i := 0; i < *warmup+*n; i++ {
			t0 := time.Now()
			cmd, err := shell.Execute(*command)
			if err != nil {
				fail("execute: %v", err)
			}
			done := make(chan struct{})
			go func() { io.Copy(io.Discard, cmd.Stderr); close(done) }()
			io.Copy(io.Discard, cmd.Stdout)
			<-done
			cmd.Wait()
			code := cmd.ExitCode()
			cmd.Close()
			el := time.Since(t0)
			if code != 0 {
				fail("command %q: exit code %d", *command, code)
			}
			if i >= *warmup {
				samples = append(samples, float64(el.Nanoseconds())/1e6)
			}
		}
		if err := shell.Close(); err != nil {
			fail("delete shell: %v", err)
		}
	case "stream":
		unit = "MB/s"
		line := fmt.Sprintf("head -c %d /dev/zero", *nbytes)
		for i := 0; i < *warmup+*n; i++ {
			var out countWriter
			var errb strings.Builder
			t0 := time.Now()
			code, err := client.Run(line, &out, &errb)
			el := time.Since(t0).Seconds()
			if err != nil || code != 0 {
				fail("run %q: code %d err %v stderr %q", line, code, err, errb.String())
			}
			if out.n != *nbytes {
				fail("run %q: got %d bytes of stdout, want %d", line, out.n, *nbytes)
			}
			if i >= *warmup {
				samples = append(samples, float64(*nbytes)/1e6/el)
			}
		}
	default:
		fail("unknown -mode %q", *mode)
	}

	s := append([]float64(nil), samples...)
	sort.Float64s(s)
	r := result{Mode: *mode, Unit: unit, Samples: samples,
		Median: quantile(s, 0.5), P95: quantile(s, 0.95), Min: s[0], Max: s[len(s)-1]}
	if unit == "MB/s" {
		// for a throughput the bad tail is the low end
		r.P95 = quantile(s, 0.05)
	}
	json.NewEncoder(os.Stdout).Encode(r)
}
