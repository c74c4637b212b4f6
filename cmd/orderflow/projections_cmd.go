package main

import (
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

	"github.com/jackc/pgx/v5"

	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/wire"
	"github.com/orderflow/orderflow/projections"
	catalogrm "github.com/orderflow/orderflow/projections/catalog"
	customersrm "github.com/orderflow/orderflow/projections/customers"
	orderrm "github.com/orderflow/orderflow/projections/orders"
)

// databaseURLFile is where `orderflow dev` writes its database URL, so that the CLI run from the
// same checkout works on that platform with no configuration.
const databaseURLFile = "database.url"

// readModel is a rebuildable read model: its projection and the database that holds it.
type readModel struct {
	projection projections.Projection
	url        func(Config) string
}

var readModels = map[string]readModel{
	orderrm.Name:     {orderrm.Projection{}, func(c Config) string { return c.OrdersDatabaseURL }},
	catalogrm.Name:   {catalogrm.Projection{}, func(c Config) string { return c.CatalogDatabaseURL }},
	customersrm.Name: {customersrm.Projection{}, func(c Config) string { return c.CustomersDatabaseURL }},
}

// cliConfig is the platform's configuration as the CLI sees it: the usual environment, and when
// DATABASE_URL is not set, the database of a `make run` in this checkout.
func cliConfig(getenv func(string) string) (Config, error) {
	env := getenv
	if getenv("DATABASE_URL") == "" {
		dir := getenv("ORDERFLOW_DATA_DIR")
		if dir == "" {
			dir = ".orderflow"
		}
		if b, err := os.ReadFile(filepath.Join(dir, databaseURLFile)); err == nil {
			url := strings.TrimSpace(string(b))
			env = func(k string) string {
				if k == "DATABASE_URL" {
					return url
				}
				return getenv(k)
			}
		}
	}
	cfg, err := ParseFlags("serve", nil, env, io.Discard)
	if err != nil {
		return Config{}, err
	}
	if err := cfg.resolve(); err != nil {
		return Config{}, fmt.Errorf("%w (run from the checkout while `make run` is up, or set DATABASE_URL)", err)
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
		rm, err := lookup(args[1])
		if err != nil {
			return err
		}
		pool, err := openPool(ctx, rm.url(cfg), args[1], 2)
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

func lookup(name string) (readModel, error) {
	rm, ok := readModels[name]
	if !ok {
		var names []string
		for n := range readModels {
			names = append(names, n)
		}
		return readModel{}, fmt.Errorf("no read model %q: want one of %s", name, strings.Join(names, ", "))
	}
	return rm, nil
}

func listProjections(ctx context.Context, cfg Config, only string, stdout io.Writer) error {
	list, err := projectionFigures(ctx, cfg, only)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "READ MODEL\tPOSITION\tHEAD\tLAG (EVENTS)\tLAG (TIME)\tUPDATED\tPARKED\tSTATUS")
	for _, p := range list {
		var status []string
		if p.Rebuilding {
			status = append(status, "rebuild in progress or interrupted (rebuild again to resume)")
		}
		if p.Paused {
			status = append(status, "paused")
		}
		upd := "never"
		if p.UpdatedAt != nil {
			upd = p.UpdatedAt.Format(time.RFC3339)
		}
		lag := time.Duration(p.LagSeconds * float64(time.Second)).Round(time.Millisecond)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%d\t%s\n", p.Name, p.Position, p.Head, p.LagEvents, lag, upd, p.Parked, strings.Join(status, "; "))
	}
	return tw.Flush()
}

// projectionFigures reads each read model's checkpoint, control and parked rows, and its lag
// behind the head of the log (PostgreSQL event store; on EventStoreDB the lag is not counted).
func projectionFigures(ctx context.Context, cfg Config, only string) ([]wire.ProjectionStatus, error) {
	var es *pgx.Conn
	head := "unknown (EventStoreDB)"
	if !isESDB(cfg.EventStoreURL) {
		var err error
		if es, err = pgx.Connect(ctx, cfg.EventStoreURL); err != nil {
			return nil, err
		}
		defer es.Close(context.Background())
		var gp int64
		if err := es.QueryRow(ctx, `select coalesce(max(global_position), 0) from eventstore.events`).Scan(&gp); err != nil {
			return nil, fmt.Errorf("head of the log: %w", err)
		}
		head = fmt.Sprint(gp)
	}
	var out []wire.ProjectionStatus
	for _, name := range []string{orderrm.Name, catalogrm.Name, customersrm.Name} {
		if only != "" && only != name {
			continue
		}
		conn, err := pgx.Connect(ctx, readModels[name].url(cfg))
		if err != nil {
			return nil, err
		}
		st := wire.ProjectionStatus{Name: name, Head: head, Position: "0-0"}
		table := func(t string) string { return pgx.Identifier{name, t}.Sanitize() }
		var c, p int64
		err = conn.QueryRow(ctx, `select commit_position, prepare_position, updated_at from `+table("projection_checkpoints")+` where name = $1`, name).Scan(&c, &p, &st.UpdatedAt)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			conn.Close(ctx)
			return nil, fmt.Errorf("%s checkpoint: %w", name, err)
		}
		st.Position = fmt.Sprintf("%d-%d", c, p)
		if es != nil {
			var oldest *time.Time
			if es.QueryRow(ctx, `select count(*), min(recorded_at) from eventstore.events where (tx_id, global_position) > ($1::text::xid8, $2)`, fmt.Sprint(c), p).Scan(&st.LagEvents, &oldest) == nil && oldest != nil {
				st.LagSeconds = time.Since(*oldest).Seconds()
			}
		}
		_ = conn.QueryRow(ctx, `select exists (select 1 from pg_namespace where nspname = $1)`, name+"_rebuild").Scan(&st.Rebuilding)
		_ = conn.QueryRow(ctx, `select coalesce((select paused from `+table("projection_control")+` where name = $1), false)`, name).Scan(&st.Paused)
		_ = conn.QueryRow(ctx, `select count(*) from `+table("projection_parked")+` where name = $1`, name).Scan(&st.Parked)
		conn.Close(ctx)
		out = append(out, st)
	}
	return out, nil
}

func rebuild(ctx context.Context, cfg Config, name string, stdout io.Writer) error {
	rm, err := lookup(name)
	if err != nil {
		return err
	}
	store, head, done, err := cliEventStore(ctx, cfg)
	defer done.run()
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
	err = rebuildReadModel(ctx, store, head, rm.url(cfg), name, rm.projection, 0, func(p projections.RebuildProgress) {
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
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s rebuilt in %s and swapped in; the old version is dropped\n", name, time.Since(start).Round(time.Millisecond))
	return nil
}

// parked lists a read model's parked events, or replays them (after a fix of its handler).
func parked(ctx context.Context, cfg Config, name string, replay bool, stdout io.Writer) error {
	rm, err := lookup(name)
	if err != nil {
		return err
	}
	pool, err := openPool(ctx, rm.url(cfg), name, 2)
	if err != nil {
		return err
	}
	defer pool.Close()
	if replay {
		store, _, done, err := cliEventStore(ctx, cfg)
		defer done.run()
		if err != nil {
			return err
		}
		n, err := projections.ReplayParked(ctx, store, pool, rm.projection)
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

// rebuildReadModel is a rebuild of one read model, as `projections rebuild`, its benchmark and
// the projections service run it.
func rebuildReadModel(ctx context.Context, store eventstore.Store, head func(context.Context) (eventstore.Position, error), url, name string, proj projections.Projection, retireAfter time.Duration, progress func(projections.RebuildProgress)) error {
	return projections.Rebuild(ctx, store, url, proj, projections.RebuildOptions{
		Schema: name, Head: head, RetireAfter: retireAfter, Progress: progress,
	})
}

// cliEventStore opens the event store the platform uses, PostgreSQL or EventStoreDB, read through
// the same upcasters as every other reader. Run the cleanup when done, even after an error.
func cliEventStore(ctx context.Context, cfg Config) (eventstore.Store, func(context.Context) (eventstore.Position, error), *cleanup, error) {
	done := &cleanup{}
	raw, _, err := openEventStore(ctx, cfg.EventStoreURL, 4, slog.New(slog.NewTextHandler(io.Discard, nil)), done)
	if err != nil {
		return nil, nil, done, err
	}
	return eventstore.WithUpcasters(raw, upcasters), headOf(raw), done, nil
}
