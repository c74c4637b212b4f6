package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/orderflow/orderflow/platform"
	"github.com/orderflow/orderflow/wire"
)

// natsConfigCmd is `orderflow nats-config --dir DIR [--prefix P]`: an nkey seed per identity
// (DIR/<identity>.nk, 0600; kept when they exist) and DIR/nats-server.conf, a NATS server that
// accepts only them, each with the permissions of the table in platform/natsauth.go. Give each
// target its own seed only (ORDERFLOW_NATS_SEEDS names the directory it is in).
func natsConfigCmd(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("nats-config", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "where the seeds and nats-server.conf go")
	prefix := fs.String("prefix", getenvOr(getenv, "ORDERFLOW_NATS_PREFIX", string(wire.DefaultNamespace)), "the installation's subject prefix")
	store := fs.String("store-dir", "/data", "JetStream's directory in the server's filesystem")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" {
		return errors.New("nats-config: want --dir DIR")
	}
	users, err := platform.MakeIdentities(*dir, wire.Namespace(*prefix))
	if err != nil {
		return err
	}
	conf, err := platform.ServerConfig(users, *store)
	if err != nil {
		return err
	}
	path := filepath.Join(*dir, "nats-server.conf")
	if err := os.WriteFile(path, append(conf, '\n'), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: %d identities (seeds %s/<identity>.nk), subjects under %s\n", path, len(users), *dir, *prefix)
	return nil
}

func getenvOr(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}
