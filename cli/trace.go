package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/orderflow/orderflow/platform"
	"github.com/orderflow/orderflow/projections"
	ordersq "github.com/orderflow/orderflow/queries/orders"
	"github.com/orderflow/orderflow/sagas/fulfillment"
	"github.com/orderflow/orderflow/wire"
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
	if err := tw.Flush(); err != nil {
		return err
	}
	return traceFooter(ctx, cfg, args[0], entries, stdout)
}

// traceFooter says where the order's fulfillment saga is (its step, re-sends, compensations
// awaited, last error) and which of its events a read model parked, when their databases answer.
func traceFooter(ctx context.Context, cfg platform.Config, id string, entries []wire.TimelineEntry, stdout io.Writer) error {
	if pool, err := platform.OpenPool(ctx, cfg.SchemaURL(fulfillment.Name), fulfillment.Name, 1); err == nil {
		defer pool.Close()
		var raw []byte
		if pool.QueryRow(ctx, `select state from fulfillment where order_id = $1`, id).Scan(&raw) == nil {
			var s fulfillment.State
			if json.Unmarshal(raw, &s) == nil {
				line := fmt.Sprintf("saga: %s", s.Step)
				if s.Outcome != "" {
					line += " (" + string(s.Outcome) + ")"
				}
				line += fmt.Sprintf(", %d commands sent, %d re-sends of this step", s.Attempts, s.Retries)
				if len(s.Awaiting) > 0 {
					line += ", awaiting " + strings.Join(s.Awaiting, ", ")
				}
				if s.Stuck {
					line += ", STUCK (waits for an operator)"
				}
				if s.LastError != "" {
					line += "; last error: " + s.LastError
				}
				fmt.Fprintln(stdout, line)
			}
		}
	}
	at := map[string]bool{}
	for _, e := range entries {
		at[e.Position] = true
	}
	for _, rm := range append(slices.Clone(platform.ReadModels), projections.Projection(nil)) {
		name := fulfillment.Name
		if rm != nil {
			name = rm.Name()
		}
		pool, err := platform.OpenPool(ctx, cfg.SchemaURL(name), name, 1)
		if err != nil {
			continue
		}
		parked, err := projections.ListParked(ctx, pool, name)
		pool.Close()
		if err != nil {
			continue
		}
		for _, p := range parked {
			if at[p.Position] {
				fmt.Fprintf(stdout, "parked by %s: %s at %s after %d attempts: %s (orderflow projections replay-parked %s)\n", name, p.Type, p.Position, p.Attempts, p.Error, name)
			}
		}
	}
	return nil
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
