package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	ordersq "github.com/orderflow/orderflow/queries/orders"
)

// traceCmd is `orderflow trace ORDER_ID`: the order's timeline from the event log, each command
// with the events it caused, in log order.
func traceCmd(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) != 1 || strings.HasPrefix(args[0], "-") {
		return errors.New("trace: want `orderflow trace ORDER_ID`")
	}
	cfg, err := cliConfig(getenv)
	if err != nil {
		return err
	}
	store, _, done, err := cliEventStore(ctx, cfg)
	defer done.Run()
	if err != nil {
		return err
	}
	entries, err := ordersq.Timeline(ctx, store, args[0])
	if err != nil {
		return err
	}
	if len(entries) == 0 {
		return fmt.Errorf("no order %q in the event log", args[0])
	}
	fmt.Fprintf(stdout, "order %s: %d events\n", args[0], len(entries))
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	cause := ""
	for _, e := range entries {
		if e.CausationID != cause {
			cause = e.CausationID
			// The command's line ends in a cell of its own: it does not widen the events' columns.
			fmt.Fprintf(tw, "%s\tcommand %s by %s (flow %s%s)\n", e.At.Format("15:04:05.000"), cause, orUnknown(e.Actor), orUnknown(e.CorrelationID), traceOf(e.TraceID))
		}
		fmt.Fprintf(tw, "\t  %s\t%s\t%s\t%s\n", e.Type, e.Stream, e.Position, e.Summary)
	}
	return tw.Flush()
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

func traceOf(id string) string {
	if id == "" {
		return ""
	}
	return ", trace " + id
}
