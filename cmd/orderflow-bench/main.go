// Command orderflow-bench measures orderflow: event store appends against raw INSERTs, the
// fulfillment saga's throughput, open-loop latency under a fixed arrival rate, a read model's
// rebuild against a raw COPY, and GraphQL reads through the gateway. Each figure comes with a
// baseline measured in the same run. `make bench` runs them all; see README.md.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/google/uuid"

	"github.com/orderflow/orderflow/bench"
)

const usage = `orderflow-bench: orderflow's benchmarks, each against a baseline measured in the same run

Usage:
  orderflow-bench append [--writers N] [--duration D]   postgres append throughput vs raw INSERT
  orderflow-bench saga [--orders N] [--rate R]          orders/s and latency placed→confirmed
  orderflow-bench open [--rates R1,R2] [--products N1,N2] [--duration D] [--chart FILE] [--export R]
                                                        open loop: latency at a fixed arrival rate
                                                        (--export: traces, logs, metrics exported vs not at R)
  orderflow-bench rebuild [--events N]                  orders read model rebuild vs raw COPY
  orderflow-bench gateway [--clients N]                 GraphQL reads through the gateway vs the query services
  orderflow-bench tracing [--orders N] [--rounds R]     saga throughput with trace export on vs off
  orderflow-bench workers [--orders N] [--events N]     saga and orders replay: 2 partitioned workers vs 1

Environment: DATABASE_URL (else a private PostgreSQL cluster is started), as orderflow's.
`

func main() {
	uuid.EnableRandPool()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(os.Args) < 2 || os.Args[1] == "help" || os.Args[1] == "-h" || os.Args[1] == "--help" {
		fmt.Fprint(os.Stderr, usage)
		if len(os.Args) < 2 {
			os.Exit(2)
		}
		return
	}
	if os.Args[1] == "platform" { // the platform a benchmark measures, in a process of its own
		if err := bench.Platform(ctx, os.Args[2:], os.Getenv, os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, "orderflow-bench platform:", err)
			os.Exit(1)
		}
		return
	}
	if err := bench.Main(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "orderflow-bench:", err)
		os.Exit(1)
	}
}
