package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/orderflow/orderflow/platform"
	"github.com/orderflow/orderflow/wire"
)

// natsConfigCmd is `orderflow nats-config --dir DIR [--prefix P] [--rotate ID | --retire ID]`: an
// nkey seed per identity (DIR/<identity>.nk, 0600; kept when they exist), DIR/callers.json (the
// public keys whose caller assertions services believe) and DIR/nats-server.conf, a NATS server
// that accepts only them, each with the permissions of the table in platform/natsauth.go. Give
// each target its own seed only, with callers.json (ORDERFLOW_NATS_SEEDS names their directory).
// --rotate gives an identity a new seed while its old key stays valid; --retire ends that.
func natsConfigCmd(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("nats-config", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "where the seeds and nats-server.conf go")
	prefix := fs.String("prefix", getenvOr(getenv, "ORDERFLOW_NATS_PREFIX", string(wire.DefaultNamespace)), "the installation's subject prefix")
	store := fs.String("store-dir", "/data", "JetStream's directory in the server's filesystem")
	tlsDir := fs.String("tls", "", "clients connect over mutual TLS: the directory, in the server's filesystem, of nats.pem, nats-key.pem and ca.pem (`orderflow certs`)")
	routes := fs.String("routes", "", "a NATS cluster: the other nodes' routes (nats://host:6222,…), over mutual TLS with --tls")
	rotate := fs.String("rotate", "", "give this identity a new seed; its old key stays valid until --retire")
	retire := fs.String("retire", "", "stop accepting this identity's old key (after a --rotate, once it runs with the new seed)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" {
		return errors.New("nats-config: want --dir DIR")
	}
	for _, id := range []string{*rotate, *retire} {
		if id != "" && !slices.Contains(platform.Identities(), id) {
			return fmt.Errorf("nats-config: no identity %q (identities: %s)", id, strings.Join(platform.Identities(), ", "))
		}
	}
	switch {
	case *rotate != "" && *retire != "":
		return errors.New("nats-config: --rotate or --retire, not both")
	case *rotate != "":
		if err := platform.Rotate(*dir, *rotate); err != nil {
			return err
		}
		defer fmt.Fprintf(stdout, "%s has a new seed (%s/%s.nk); its old key stays valid. Restart NATS with the new nats-server.conf and every target with the new callers.json, then %s with its new seed, then: orderflow nats-config --dir %s --retire %s\n",
			*rotate, *dir, *rotate, *rotate, *dir, *rotate)
	case *retire != "":
		if err := platform.Retire(*dir, *retire); err != nil {
			return err
		}
		defer fmt.Fprintf(stdout, "%s's old key is no longer valid: restart NATS with the new nats-server.conf and every target with the new callers.json\n", *retire)
	}
	users, err := platform.MakeIdentities(*dir, wire.Namespace(*prefix))
	if err != nil {
		return err
	}
	conf, err := platform.ServerConfig(users, platform.ServerOptions{StoreDir: *store, TLSDir: *tlsDir, Routes: splitList(*routes)})
	if err != nil {
		return err
	}
	path := filepath.Join(*dir, "nats-server.conf")
	if err := os.WriteFile(path, append(conf, '\n'), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: %d identities, %d keys (seeds %s/<identity>.nk, public keys %s), subjects under %s\n",
		path, len(platform.Identities()), len(users), *dir, platform.CallersFile, *prefix)
	return nil
}

func getenvOr(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}

// splitList is a comma-separated list's non-empty items.
func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}
