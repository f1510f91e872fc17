// winrmd-gotest: a masterzen/winrm client for the winrmd integration tests.
//
// Usage: winrmd-gotest -host H -port P -user U -pass W [-https] [-auth basic|ntlm] [-stdin TEXT] CMD [ARGS...]
//
// Logs in with Basic, or with NTLM (winrm.ClientNTLM, i.e. Azure/go-ntlmssp,
// which neither signs nor seals, so it needs HTTPS or AllowUnencrypted).
// HTTPS certificates are not verified. Runs CMD with the given stdin, then
// prints
//
//	STDOUT-B64 <base64 of stdout>
//	STDERR-B64 <base64 of stderr>
//	EXIT <code>
//
// and exits 0; on a client error it prints ERROR <text> and exits 2.
package main

import (
	"bytes"
	"encoding/base64"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/masterzen/winrm"
)

func fail(err error) {
	fmt.Printf("ERROR %v\n", err)
	os.Exit(2)
}

func main() {
	host := flag.String("host", "127.0.0.1", "server address")
	port := flag.Int("port", 5986, "server port")
	user := flag.String("user", "", "user name")
	pass := flag.String("pass", "", "password")
	https := flag.Bool("https", true, "use HTTPS (certificate not verified)")
	auth := flag.String("auth", "basic", "basic or ntlm")
	stdin := flag.String("stdin", "", "text given to the command's stdin")
	flag.Parse()
	if flag.NArg() < 1 {
		fmt.Fprintln(os.Stderr, "usage: winrmd-gotest [flags] CMD [ARGS...]")
		os.Exit(2)
	}

	endpoint := winrm.NewEndpoint(*host, *port, *https, true, nil, nil, nil, 60*time.Second)
	params := *winrm.DefaultParameters
	switch *auth {
	case "basic":
	case "ntlm":
		params.TransportDecorator = func() winrm.Transporter { return &winrm.ClientNTLM{} }
	default:
		fmt.Fprintln(os.Stderr, "winrmd-gotest: -auth is basic or ntlm")
		os.Exit(2)
	}
	client, err := winrm.NewClientWithParameters(endpoint, *user, *pass, &params)
	if err != nil {
		fail(err)
	}
	var stdout, stderr bytes.Buffer
	code, err := client.RunWithInput(strings.Join(flag.Args(), " "),
		&stdout, &stderr, strings.NewReader(*stdin))
	if err != nil {
		fail(err)
	}
	fmt.Printf("STDOUT-B64 %s\n", base64.StdEncoding.EncodeToString(stdout.Bytes()))
	fmt.Printf("STDERR-B64 %s\n", base64.StdEncoding.EncodeToString(stderr.Bytes()))
	fmt.Printf("EXIT %d\n", code)
}
