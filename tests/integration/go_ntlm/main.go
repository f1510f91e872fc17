// winrmd-gotest-ntlm: a masterzen/winrm client that logs in with NTLM
// (winrm.ClientNTLM, i.e. Azure/go-ntlmssp's Negotiator), for the winrmd
// integration tests (tests/integration/test_auth_ntlm.py).
//
// Usage: winrmd-gotest-ntlm -host H -port P -user U -pass W [-https] [-stdin TEXT] CMD [ARGS...]
//
// go-ntlmssp neither signs nor seals, so this client is meant for HTTPS
// (certificate not verified).  It runs CMD with the given stdin, then prints
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

func main() {
	host := flag.String("host", "127.0.0.1", "server address")
	port := flag.Int("port", 5986, "server port")
	user := flag.String("user", "", "user name")
	pass := flag.String("pass", "", "password")
	https := flag.Bool("https", true, "use HTTPS (certificate not verified)")
	stdin := flag.String("stdin", "", "text given to the command's stdin")
	flag.Parse()
	if flag.NArg() < 1 {
		fmt.Fprintln(os.Stderr, "usage: winrmd-gotest-ntlm [flags] CMD [ARGS...]")
		os.Exit(2)
	}

	endpoint := winrm.NewEndpoint(*host, *port, *https, true, nil, nil, nil, 60*time.Second)
	params := *winrm.DefaultParameters
	params.TransportDecorator = func() winrm.Transporter { return &winrm.ClientNTLM{} }
	client, err := winrm.NewClientWithParameters(endpoint, *user, *pass, &params)
	if err != nil {
		fmt.Printf("ERROR %v\n", err)
		os.Exit(2)
	}
	var stdout, stderr bytes.Buffer
	code, err := client.RunWithInput(strings.Join(flag.Args(), " "),
		&stdout, &stderr, strings.NewReader(*stdin))
	if err != nil {
		fmt.Printf("ERROR %v\n", err)
		os.Exit(2)
	}
	fmt.Printf("STDOUT-B64 %s\n", base64.StdEncoding.EncodeToString(stdout.Bytes()))
	fmt.Printf("STDERR-B64 %s\n", base64.StdEncoding.EncodeToString(stderr.Bytes()))
	fmt.Printf("EXIT %d\n", code)
}
