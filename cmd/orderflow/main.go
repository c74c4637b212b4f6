// Command orderflow is the whole platform in one binary: `orderflow dev` runs everything with
// zero configuration; `orderflow serve --target=…` runs any set of targets.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/google/uuid"

	"github.com/orderflow/orderflow/cli"
)

func main() {
	// Random ids (correlation ids, command ids) from a buffer of crypto/rand output rather than a
	// system call each.
	uuid.EnableRandPool()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := cli.Main(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "orderflow:", err)
		os.Exit(1)
	}
}
