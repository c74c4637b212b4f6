package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/orderflow/orderflow/dev/devcerts"
)

// defaultServers are the compose file's servers, by the names its containers reach them by (and
// localhost, for a client on the host).
const defaultServers = "nats=nats,localhost,127.0.0.1;postgres=postgres,localhost,127.0.0.1;eventstore=eventstore,localhost,127.0.0.1"

// certsCmd is `orderflow certs --dir DIR [--servers NAME=HOST,HOST;…] [--clients NAME,…]`: a local
// certificate authority (kept and reused in DIR) and a certificate per server and client, for TLS
// between orderflow's parts where no PKI exists (the compose file; Kubernetes uses cert-manager).
func certsCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("certs", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "where the authority and the certificates go")
	servers := fs.String("servers", defaultServers, "server certificates: NAME=HOST,HOST;NAME=…")
	clients := fs.String("clients", "orderflow", "client certificates (mutual TLS with NATS): NAME,NAME")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" {
		return errors.New("certs: want --dir DIR")
	}
	var certs []devcerts.Cert
	for _, s := range strings.Split(*servers, ";") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		name, hosts, ok := strings.Cut(s, "=")
		if !ok || name == "" || hosts == "" {
			return fmt.Errorf("certs: --servers %q: want NAME=HOST,HOST", s)
		}
		certs = append(certs, devcerts.Cert{Name: name, Hosts: strings.Split(hosts, ",")})
	}
	for _, c := range strings.Split(*clients, ",") {
		if c = strings.TrimSpace(c); c != "" {
			certs = append(certs, devcerts.Cert{Name: c})
		}
	}
	if err := devcerts.Make(*dir, certs...); err != nil {
		return err
	}
	for _, c := range certs {
		fmt.Fprintf(stdout, "%s/%s.pem, %s-key.pem (%s)\n", *dir, c.Name, c.Name, map[bool]string{true: "server: " + strings.Join(c.Hosts, ", "), false: "client"}[len(c.Hosts) > 0])
	}
	fmt.Fprintf(stdout, "trust %s/ca.pem; keep %s/ca-key.pem off the machines that only trust it\n", *dir, *dir)
	return nil
}
