package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/platform"
	"github.com/orderflow/orderflow/projections"
	"github.com/orderflow/orderflow/sagas/fulfillment"
	"github.com/orderflow/orderflow/wire"
)

// cliConfig is the platform's configuration as the CLI sees it: the usual environment, and when
// DATABASE_URL is not set, the database of a `make run` in this checkout.
func cliConfig(getenv func(string) string) (platform.Config, error) {
	env := getenv
	if getenv("DATABASE_URL") == "" {
		if b, err := os.ReadFile(filepath.Join(cliDataDir(getenv), platform.DatabaseURLFile)); err == nil {
			url := strings.TrimSpace(string(b))
			env = func(k string) string {
				if k == "DATABASE_URL" {
					return url
				}
				return getenv(k)
			}
		}
	}
	cfg, err := platform.ParseFlags("serve", nil, env, io.Discard)
	if err != nil {
		return platform.Config{}, err
	}
	if err := cfg.Resolve(); err != nil {
		return platform.Config{}, fmt.Errorf("%w (run from the checkout while `make run` is up, or set DATABASE_URL)", err)
	}
	return cfg, nil
}

// projectionsCmd is `orderflow projections list | status NAME | rebuild NAME`.
func projectionsCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	usage := errors.New("projections: want `orderflow projections list`, `status NAME`, `rebuild NAME`, `pause NAME`, `resume NAME`, `parked NAME` or `replay-parked NAME`")
	if len(args) == 0 {
		return usage
	}
	cfg, err := cliConfig(getenv)
	if err != nil {
		return err
	}
	switch args[0] {
	case "list":
		return listProjections(ctx, cfg, "", stdout)
	case "status":
		if len(args) != 2 {
			return usage
		}
		return listProjections(ctx, cfg, args[1], stdout)
	case "rebuild":
		if len(args) != 2 {
			return usage
		}
		return rebuild(ctx, cfg, args[1], stdout)
	case "pause", "resume":
		if len(args) != 2 {
			return usage
		}
		if _, err := lookup(args[1]); err != nil {
			return err
		}
		pool, err := platform.OpenPool(ctx, cfg.SchemaURL(args[1]), args[1], 2)
		if err != nil {
			return err
		}
		defer pool.Close()
		if err := projections.SetPaused(ctx, pool, args[1], args[0] == "pause"); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s %sd: its projector notices within a second\n", args[1], args[0])
		return nil
	case "parked", "replay-parked":
		if len(args) != 2 {
			return usage
		}
		return parked(ctx, cfg, args[1], args[0] == "replay-parked", stdout)
	}
	return usage
}

// lookup finds a read model of the platform by name.
func lookup(name string) (projections.Projection, error) {
	rm, ok := platform.ReadModel(name)
	if !ok {
		var names []string
		for _, rm := range platform.ReadModels {
			names = append(names, rm.Name())
		}
		return nil, fmt.Errorf("no read model %q: want one of %s", name, strings.Join(names, ", "))
	}
	return rm, nil
}

// listProjections prints the read models and the saga (or only the one named) with their
// partitions: a line each, and with only, a line per partition too.
func listProjections(ctx context.Context, cfg platform.Config, only string, stdout io.Writer) error {
	var names []string
	for _, rm := range platform.ReadModels {
		if only == "" || rm.Name() == only {
			names = append(names, rm.Name())
		}
	}
	if only == "" || only == fulfillment.Name {
		names = append(names, fulfillment.Name) // the saga is partitioned as the read models are
	}
	if only != "" && len(names) == 0 {
		_, err := lookup(only)
		return err
	}
	list, err := projections.Statuses(ctx, cfg.EventStoreURL, names, cfg.SchemaURL)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "READ MODEL\tPOSITION\tHEAD\tLAG (EVENTS)\tLAG (TIME)\tUPDATED\tPARTITIONS\tWORKERS\tPARKED\tSTATUS")
	for _, p := range list {
		var status []string
		if p.Rebuilding {
			status = append(status, "rebuild in progress or interrupted (rebuild again to resume)")
		}
		if p.Paused {
			status = append(status, "paused")
		}
		if len(p.Partitions) == 0 {
			status = append(status, "not created: its target has not run on this database")
		}
		if held := heldPartitions(p); held < len(p.Partitions) {
			status = append(status, fmt.Sprintf("%d of %d partitions held by no worker", len(p.Partitions)-held, len(p.Partitions)))
		}
		upd := "never"
		if p.UpdatedAt != nil {
			upd = p.UpdatedAt.Format(time.RFC3339)
		}
		lag := time.Duration(p.LagSeconds * float64(time.Second)).Round(time.Millisecond)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%d\t%d\t%d\t%s\n", p.Name, p.Position, p.Head, p.LagEvents, lag, upd, len(p.Partitions), p.Workers, p.Parked, strings.Join(status, "; "))
	}
	if err := tw.Flush(); err != nil || only == "" || len(list) != 1 {
		return err
	}
	fmt.Fprintln(stdout)
	tw = tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PARTITION\tPOSITION\tLAG (POSITIONS)\tWORKER\tEPOCH\tUPDATED")
	for _, pt := range list[0].Partitions {
		fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%d\t%s\n", pt.Partition, pt.Position, pt.Lag, cmp.Or(pt.Owner, "-"), pt.Epoch, pt.UpdatedAt.Format(time.RFC3339))
	}
	return tw.Flush()
}

// heldPartitions counts the partitions of p a worker holds.
func heldPartitions(p wire.ProjectionStatus) int {
	n := 0
	for _, pt := range p.Partitions {
		if pt.Owner != "" {
			n++
		}
	}
	return n
}

func rebuild(ctx context.Context, cfg platform.Config, name string, stdout io.Writer) error {
	rm, err := lookup(name)
	if err != nil {
		return err
	}
	store, head, done, err := cliEventStore(ctx, cfg)
	defer done.Run()
	if err != nil {
		return err
	}
	tty := false
	if f, ok := stdout.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	// The CLI process does nothing but the rebuild, which makes garbage at a great rate (a million
	// decoded events) and has memory to spare: the collector runs at a quarter of its usual
	// frequency (5–10% of a rebuild's time). Not in the projector target, whose rebuilds run beside
	// live work and each other.
	debug.SetGCPercent(400)
	start := time.Now()
	err = projections.Rebuild(ctx, store, cfg.SchemaURL(name), rm, projections.RebuildOptions{Head: head, Progress: func(p projections.RebuildProgress) {
		pct := 100.0
		if p.Total > 0 {
			pct = min(100, 100*float64(p.Done)/float64(p.Total))
		}
		line := fmt.Sprintf("%s: %s %5.1f%%  %d/%d events  %.0f events/s  ETA %s", name, p.Phase, pct, p.Done, p.Total, p.Rate, p.ETA.Round(time.Second))
		if tty {
			bar := strings.Repeat("█", int(pct/5)) + strings.Repeat("░", 20-int(pct/5))
			fmt.Fprintf(stdout, "\r%s %s\033[K", bar, line)
			if p.Phase == "done" {
				fmt.Fprintln(stdout)
			}
			return
		}
		fmt.Fprintln(stdout, line)
	}})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s rebuilt in %s and swapped in; the old version is dropped\n", name, time.Since(start).Round(time.Millisecond))
	return nil
}

// parked lists a read model's parked events, or replays them (after a fix of its handler).
func parked(ctx context.Context, cfg platform.Config, name string, replay bool, stdout io.Writer) error {
	rm, err := lookup(name)
	if err != nil {
		return err
	}
	pool, err := platform.OpenPool(ctx, cfg.SchemaURL(name), name, 2)
	if err != nil {
		return err
	}
	defer pool.Close()
	if replay {
		store, _, done, err := cliEventStore(ctx, cfg)
		defer done.Run()
		if err != nil {
			return err
		}
		n, err := projections.ReplayParked(ctx, store, pool, rm)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: %d parked events applied\n", name, n)
	}
	list, err := projections.ListParked(ctx, pool, name)
	if err != nil {
		return err
	}
	if len(list) == 0 {
		fmt.Fprintf(stdout, "%s: no parked events\n", name)
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "EVENT\tSTREAM\tTYPE\tPOSITION\tATTEMPTS\tPARKED\tERROR")
	for _, p := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", p.EventID, p.Stream, p.Type, p.Position, p.Attempts, p.ParkedAt.Format(time.RFC3339), p.Error)
	}
	return tw.Flush()
}

// cliEventStore opens the event store the platform uses, PostgreSQL or EventStoreDB, read as every
// other reader does (platform.Readable: personal data decrypted or redacted, old shapes upcast).
// Run the cleanup when done, even after an error.
func cliEventStore(ctx context.Context, cfg platform.Config) (eventstore.Store, func(context.Context) (eventstore.Position, error), *platform.Cleanup, error) {
	done := &platform.Cleanup{}
	raw, _, err := platform.OpenEventStore(ctx, cfg.EventStoreURL, 4, slog.New(slog.DiscardHandler), done)
	if err != nil {
		return nil, nil, done, err
	}
	store, _, err := platform.Readable(ctx, cfg, raw, done)
	return store, platform.HeadOf(raw), done, err
}
