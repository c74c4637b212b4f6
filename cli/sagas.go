package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/orderflow/orderflow/internal/rpc"
	"github.com/orderflow/orderflow/wire"
)

// sagasCmd is `orderflow sagas list [--step S] [--stuck] [--first N]` and `orderflow sagas show ORDER_ID`:
// the fulfillment saga's figures and its sagas, from the running platform.
func sagasCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "list" && args[0] != "show") {
		return fmt.Errorf("sagas: want `orderflow sagas list [--step STEP] [--stuck] [--first N]` or `orderflow sagas show ORDER_ID`")
	}
	fs := flag.NewFlagSet("sagas "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	step := fs.String("step", "", "only sagas in this step (RESERVING, AUTHORIZING, CONFIRMING, CONFIRMED, CANCELLED)")
	first := fs.Int("first", 20, "how many, newest first")
	stuck := fs.Bool("stuck", false, "only sagas that stopped re-sending and wait for an operator")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	ctx, nc, ns, err := cliNATS(ctx, getenv, "sagas")
	if err != nil {
		return err
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if args[0] == "show" {
		if fs.NArg() != 1 {
			return fmt.Errorf("sagas show: want one ORDER_ID")
		}
		f, err := rpc.Ask(ctx, nc, ns, wire.EndpointFulfillment, wire.FulfillmentByOrder{OrderID: fs.Arg(0)})
		if err != nil {
			return fmt.Errorf("sagas show %s: %w", fs.Arg(0), err)
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(f)
	}
	counts, err := rpc.Ask(ctx, nc, ns, wire.EndpointFulfillmentCounts, struct{}{})
	if err != nil {
		return fmt.Errorf("sagas list: %w", err)
	}
	list, err := rpc.Ask(ctx, nc, ns, wire.EndpointFulfillments, wire.ListFulfillments{Step: *step, First: *first, Stuck: *stuck})
	if err != nil {
		return fmt.Errorf("sagas list: %w", err)
	}
	fmt.Fprintf(stdout, "fulfillment: %d in flight, %d confirmed, %d compensated, %d timed out, %d stuck; %d commands waiting to be sent\n",
		counts.InFlight, counts.Confirmed, counts.Compensated, counts.TimedOut, counts.Stuck, counts.Outbox)
	if breaker, err := rpc.Ask(ctx, nc, ns, wire.EndpointPaymentProvider, struct{}{}); err == nil {
		fmt.Fprintf(stdout, "payment provider: configured %v, circuit breaker %s\n", breaker.Configured, breaker.Breaker)
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ORDER\tSTEP\tOUTCOME\tATTEMPTS\tDEADLINE\tAWAITING\tUPDATED\tLAST ERROR")
	for _, f := range list {
		deadline := ""
		if f.Deadline != nil {
			deadline = time.Until(*f.Deadline).Round(time.Second).String()
		}
		if f.Stuck {
			deadline = "STUCK"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", f.OrderID, f.Step, f.Outcome, f.Attempts, deadline, strings.Join(f.Awaiting, ","),
			f.UpdatedAt.Format(time.RFC3339), f.LastError)
	}
	return tw.Flush()
}
