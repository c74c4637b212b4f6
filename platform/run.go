// Package platform runs orderflow: its configuration (Config, read once from flags and the
// environment), the registry of its targets (Targets), and Run, which opens what a process's
// targets share (event store, NATS, database pools, metrics) and starts them. `orderflow serve`,
// `orderflow dev`, the benchmarks and the platform's tests all start it through Run.
package platform

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/orderflow/orderflow/commands"
	"github.com/orderflow/orderflow/dev/natsrv"
	"github.com/orderflow/orderflow/eventstore/postgres"
	"github.com/orderflow/orderflow/internal/auth"
	"github.com/orderflow/orderflow/internal/ops"
	"github.com/orderflow/orderflow/internal/rpc"
	"github.com/orderflow/orderflow/internal/telemetry"
	"github.com/orderflow/orderflow/target"
)

// Files `orderflow dev` writes in its data directory, so that the CLI run from the same checkout
// finds the platform with no configuration.
const (
	// DatabaseURLFile holds the URL of the dev cluster's database.
	DatabaseURLFile = "database.url"
	// NATSURLFile holds the URL of the embedded NATS server.
	NATSURLFile = "nats.url"
)

// Run starts cfg's targets and blocks until ctx ends, then shuts down in order. onReady, if set,
// is called with the HTTP address once every target is up. Its steps: tune the process, open the
// infrastructure dev needs (PostgreSQL, NATS), connect each target to NATS as itself, open what
// the targets share, start them, serve HTTP.
func Run(ctx context.Context, cfg Config, stdout, stderr io.Writer, onReady func(httpAddr string)) (err error) {
	var done Cleanup
	defer func() { done.Run() }()
	logs, err := openLogs(ctx, cfg, &done)
	if err != nil {
		return err
	}
	output := NewLogger(cfg, stderr)
	log := exported(output, logs.Handler(""), cfg)
	if err := tune(ctx, cfg, log, &done); err != nil {
		return err
	}
	access, err := openInfrastructure(ctx, &cfg, log, &done)
	if err != nil {
		return err
	}
	selected := cfg.selected()
	conns, err := connectTargets(ctx, cfg, access, selected, log, &done)
	if err != nil {
		return err
	}
	svcCtx, proc, resources, err := startProcess(access, conns, log, &done)
	if err != nil {
		return err
	}
	d, err := openShared(ctx, cfg, selected, proc, log, resources)
	if err != nil {
		return err
	}
	d.Log = output
	if err := startTargets(svcCtx, d, conns, access.seeds, selected, proc, func(t string) *slog.Logger { return exported(output, logs.Handler(t), cfg) }); err != nil {
		return err
	}
	handler := proc.Handler() // the gateway's API; the other targets serve /healthz, /readyz and /metrics
	if handler == nil {
		handler = ops.Handler(proc.Ready, d.Metrics)
	}
	addr, serverErr, err := serveHTTP(ctx, cfg, handler, &done)
	if err != nil {
		return err
	}
	announce(stdout, cfg, addr)
	log.Info("started", "targets", strings.Join(cfg.Targets, ","))
	if onReady != nil {
		onReady(addr)
	}
	select {
	case <-ctx.Done():
		log.Info("shutting down")
		return nil
	case err := <-serverErr:
		return fmt.Errorf("http server: %w", err)
	}
}

// tune sets the process's collector and memory limit, serves its debug endpoints and sets up
// tracing.
func tune(ctx context.Context, cfg Config, log *slog.Logger, done *Cleanup) error {
	if cfg.GCPercent > 0 {
		debug.SetGCPercent(cfg.GCPercent)
	}
	if cfg.MemoryLimit > 0 {
		debug.SetMemoryLimit(cfg.MemoryLimit)
	}
	if cfg.DebugAddr != "" {
		stop, err := serveDebug(cfg.DebugAddr, log)
		if err != nil {
			return err
		}
		done.Add(stop)
	}
	stopTracing, err := telemetry.Setup(ctx, telemetry.Service(cfg.Targets), cfg.Traces)
	if err != nil {
		return err
	}
	done.Add(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = stopTracing(ctx) // flush what is still buffered
	})
	if cfg.Traces.Endpoint != "" {
		log.Info("exporting traces", "endpoint", Mask(cfg.Traces.Endpoint), "protocol", cfg.Traces.Protocol, "service", telemetry.Service(cfg.Targets))
	}
	return nil
}

// natsAccess is how the targets reach NATS: the options of an in-process connection to the
// embedded server (none for a server of its own), and the directory of the identities' seeds
// (empty: no identities).
type natsAccess struct {
	inProcess []nats.Option
	seeds     string
}

// openInfrastructure starts what dev needs and the configuration does not name (a private
// PostgreSQL cluster, an embedded NATS server with the platform's identities), completing cfg.
func openInfrastructure(ctx context.Context, cfg *Config, log *slog.Logger, done *Cleanup) (natsAccess, error) {
	// dev needs PostgreSQL for the read models, and for the event store unless it is EventStoreDB.
	if cfg.Dev && cfg.DatabaseURL == "" && (cfg.EventStoreURL == "" || cfg.OrdersDatabaseURL == "" || cfg.CatalogDatabaseURL == "" ||
		cfg.CustomersDatabaseURL == "" || cfg.SagasDatabaseURL == "") {
		url, stop, err := devDatabase(ctx, cfg.DataDir, log)
		if err != nil {
			return natsAccess{}, err
		}
		done.Add(stop)
		cfg.DatabaseURL = url
		writeFound(cfg.DataDir, DatabaseURLFile, url, 0o600, done)
	}
	if err := cfg.Resolve(); err != nil {
		return natsAccess{}, err
	}
	access := natsAccess{seeds: cfg.NATSSeeds}
	if cfg.NATSURL == "" {
		// The embedded server accepts only the platform's identities, each with its permissions
		// (grants): zero trust even on a laptop. Their seeds stay in the data directory.
		access.seeds = filepath.Join(cfg.DataDir, SeedsDir)
		users, err := MakeIdentities(access.seeds, cfg.NATSNamespace)
		if err != nil {
			return natsAccess{}, fmt.Errorf("nats identities: %w", err)
		}
		ns, err := natsrv.Start(natsrv.Options{StoreDir: filepath.Join(cfg.DataDir, "nats"), Users: users})
		if err != nil {
			return natsAccess{}, err
		}
		// This process's services talk to the embedded server in memory, not over TCP: a third
		// of a gateway query's CPU was system calls on loopback sockets.
		access.inProcess = append(access.inProcess, ns.InProcess())
		done.Add(ns.Stop)
		cfg.NATSURL = ns.URL()
		log.Info("embedded nats started", "url", cfg.NATSURL, "identities", len(users))
		writeFound(cfg.DataDir, NATSURLFile, cfg.NATSURL, 0o644, done)
	}
	log.Info("config", "targets", strings.Join(cfg.Targets, ","), "http_addr", cfg.HTTPAddr,
		"eventstore_url", Mask(cfg.EventStoreURL), "orders_database_url", Mask(cfg.OrdersDatabaseURL),
		"catalog_database_url", Mask(cfg.CatalogDatabaseURL), "customers_database_url", Mask(cfg.CustomersDatabaseURL), "nats_url", Mask(cfg.NATSURL), "nats_prefix", string(cfg.NATSNamespace))
	return access, nil
}

// writeFound writes value to the file name of the data directory, for the CLI run from the same
// checkout to find, and removes it on the way out.
func writeFound(dir, name, value string, mode os.FileMode, done *Cleanup) {
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(value+"\n"), mode); err == nil {
		done.Add(func() { _ = os.Remove(path) })
	}
}

// connectTargets connects each selected target to NATS as itself: its own identity, its own
// permissions.
func connectTargets(ctx context.Context, cfg Config, access natsAccess, selected []target.Target, log *slog.Logger, done *Cleanup) (map[string]*nats.Conn, error) {
	connect := func(identity string) (*nats.Conn, error) {
		opts := append([]nats.Option{nats.Name("orderflow " + identity), nats.MaxReconnects(-1),
			nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
				log.Warn("nats", "identity", identity, "err", err) // a permission refused says so here
			})}, access.inProcess...)
		opts = append(opts, cfg.NATSTLS.Options()...)
		if access.seeds != "" && !cfg.NATSInsecure {
			id, err := IdentityOptions(identity, filepath.Join(access.seeds, identity+".nk"))
			if err != nil {
				return nil, err
			}
			opts = append(opts, id...)
		}
		nc, err := nats.Connect(cfg.NATSURL, opts...)
		if err != nil {
			return nil, fmt.Errorf("connect to nats %s as %s: %w", Mask(cfg.NATSURL), identity, err)
		}
		// Its requests to a service of this process are carried out in the process, where its
		// permissions would let it send them (rpc.AllowLocal).
		publish, _, _ := Permissions(identity, cfg.NATSNamespace)
		rpc.AllowLocal(nc, publish)
		done.Add(func() { rpc.ForgetLocal(nc); _ = nc.Drain() })
		if err := CheckNATSServer(nc.ConnectedServerVersion()); err != nil {
			return nil, fmt.Errorf("nats %s: %w", Mask(cfg.NATSURL), err)
		}
		return nc, nil
	}
	conns := map[string]*nats.Conn{}
	for _, t := range selected {
		var nc *nats.Conn
		var err error
		labelled(ctx, t.Name, func(context.Context) { nc, err = connect(t.Name) }) // its reading and writing goroutines are the target's
		if err != nil {
			return nil, err
		}
		conns[t.Name] = nc
	}
	return conns, nil
}

// startProcess makes what the targets of the process share while they run: the services'
// context, which says whom they trust (each request and queued command carries its caller,
// asserted by the gateway or the saga with its identity's key); the Process, ready while every
// connection is up; and the resources closed once the targets stopped.
func startProcess(access natsAccess, conns map[string]*nats.Conn, log *slog.Logger, done *Cleanup) (context.Context, *target.Process, *Cleanup, error) {
	svcCtx := context.Background()
	if access.seeds != "" {
		trust, err := Trust(access.seeds)
		if err != nil {
			return nil, nil, nil, err
		}
		svcCtx = auth.WithTrust(svcCtx, trust)
	} else {
		log.Warn("NATS without identities (ORDERFLOW_NATS_INSECURE without ORDERFLOW_NATS_SEEDS): services trust every caller; development only")
	}
	svcCtx, stopServices := context.WithCancel(svcCtx)
	proc := target.NewProcess(svcCtx)
	// What the targets use (the event store, the databases' pools) is closed once they stopped:
	// a projector's batch or a saga's deadline on a closed pool was an ERROR at every clean
	// shutdown. Cleanups run last first, so this one, added before the one that stops the
	// services, runs after it.
	resources := &Cleanup{}
	done.Add(func() { resources.Run() })
	done.Add(func() { stopServices(); proc.Wait() })
	proc.Check(func(context.Context) error {
		for name, nc := range conns {
			if !nc.IsConnected() {
				return fmt.Errorf("nats: %s not connected", name)
			}
		}
		return nil
	})
	return svcCtx, proc, resources, nil
}

// openShared opens what the selected targets share: the event store (personal data protected,
// one Writer for the command services) and a pool per database they use, each checked while the
// process is up.
func openShared(ctx context.Context, cfg Config, selected []target.Target, proc *target.Process, log *slog.Logger, resources *Cleanup) (target.Deps, error) {
	d := target.Deps{Namespace: cfg.NATSNamespace, Log: log, Metrics: metricsRegistry(),
		EventStoreURL: cfg.EventStoreURL, DatabaseURL: cfg.SchemaURL, ConsistencyTimeout: cfg.ConsistencyTimeout}
	if err := openMetrics(ctx, cfg, d.Metrics, resources); err != nil {
		return d, fmt.Errorf("metric export: %w", err)
	}
	if conns := eventStoreConns(selected); conns > 0 {
		raw, ping, err := OpenEventStore(ctx, cfg.EventStoreURL, conns, log, resources)
		if err != nil {
			return d, err
		}
		proc.Check(ping)
		if d.Store, d.Keys, err = Readable(ctx, cfg, raw, resources); err != nil {
			return d, err
		}
		d.Head = HeadOf(raw)
		// The command services of this process write through one Writer: one writer per stream,
		// its decided state cached (see commands.Writer).
		d.Writer = commands.NewWriter(d.Store, commands.WriterOptions{})
		d.Metrics.MustRegister(commandCache(d.Writer)...)
		if pg, ok := raw.(*postgres.Store); ok {
			d.Metrics.MustRegister(horizonAge(pg))
		}
	}
	pools := map[target.Database]*pgxpool.Pool{} // by schema and Reads
	for _, db := range databaseConns(selected) {
		open := OpenPool
		if db.Reads {
			open = OpenReadPool
		}
		pool, err := open(ctx, cfg.SchemaURL(db.Schema), db.Schema, db.Conns)
		if err != nil {
			return d, fmt.Errorf("%s database: %w", db.Schema, err)
		}
		resources.Add(pool.Close)
		proc.Check(pool.Ping)
		pools[target.Database{Schema: db.Schema, Reads: db.Reads}] = pool
	}
	d.Pool = func(schema string) *pgxpool.Pool { return pools[target.Database{Schema: schema}] }
	d.ReadPool = func(schema string) *pgxpool.Pool { return pools[target.Database{Schema: schema, Reads: true}] }
	return d, nil
}

// commandCache is the metrics of what w, the command services' Writer, keeps cached.
func commandCache(w *commands.Writer) []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "orderflow_command_cache_streams",
			Help: "Streams whose state the command services of this process keep cached."},
			func() float64 { streams, _ := w.Cached(); return float64(streams) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "orderflow_command_cache_commands",
			Help: fmt.Sprintf("Command ids the cached streams hold: the cache's size, bounded at %d.", commands.DefaultMaxCommands)},
			func() float64 { _, commands := w.Cached(); return float64(commands) }),
	}
}

// horizonAge is the metric of how long the oldest transaction of pg's cluster holds subscribers back.
func horizonAge(pg *postgres.Store) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "orderflow_eventstore_horizon_age_seconds",
		Help: "Age of the oldest transaction on the event store's cluster: how long it holds every subscriber back."},
		func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			age, _ := pg.HorizonAge(ctx)
			return age.Seconds()
		})
}

// startTargets starts each selected target with its own connection, logger (logger's, which
// exports as the target's service when logs are exported) and signing key, its work labelled with
// its name in CPU profiles.
func startTargets(svcCtx context.Context, d target.Deps, conns map[string]*nats.Conn, seeds string, selected []target.Target, proc *target.Process,
	logger func(target string) *slog.Logger) error {
	for _, t := range selected {
		td := d
		td.Log = logger(t.Name).With("target", t.Name)
		td.NC = conns[t.Name]
		var err error
		if td.JS, err = jetstream.New(td.NC); err != nil {
			return fmt.Errorf("jetstream: %w", err)
		}
		tctx := telemetry.WithTarget(svcCtx, t.Name) // its spans are its service's
		if seeds != "" {
			signer, err := Signer(t.Name, seeds)
			if err != nil {
				return err
			}
			if signer != nil {
				tctx = auth.WithSigner(tctx, signer)
			}
		}
		labelled(tctx, t.Name, func(tctx context.Context) { err = t.Start(tctx, td, proc) })
		if err != nil {
			return fmt.Errorf("%s: %w", t.Name, err)
		}
	}
	return nil
}

// serveHTTP serves handler at cfg.HTTPAddr until the process stops, answering the address it
// listens on and a channel that reports the server's failure.
func serveHTTP(ctx context.Context, cfg Config, handler http.Handler, done *Cleanup) (string, <-chan error, error) {
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return "", nil, fmt.Errorf("listen on %s (set ORDERFLOW_HTTP_ADDR to use another address): %w", cfg.HTTPAddr, err)
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	serverErr := make(chan error, 1)
	httpLabel := "http" // in CPU profiles: the gateway's requests, or the health and metrics of the others
	if cfg.runs("gateway") {
		httpLabel = "gateway"
	}
	go labelled(ctx, httpLabel, func(context.Context) {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			serverErr <- err
		}
	})
	done.Add(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	})
	return ln.Addr().String(), serverErr, nil
}

// announce tells the user where the platform answers: the gateway's API (and in dev an admin
// token), or the health of the targets that run.
func announce(stdout io.Writer, cfg Config, addr string) {
	if !cfg.runs("gateway") {
		fmt.Fprintf(stdout, "orderflow %s is up: health http://%s/readyz\n", strings.Join(cfg.Targets, ","), addr)
		return
	}
	fmt.Fprintf(stdout, "orderflow is up: REST http://%s/api/v1  GraphQL http://%s/graphql  (Ctrl-C stops)\n", addr, addr)
	if cfg.Dev && cfg.JWKSFile == "" {
		if secret, err := JWTSecret(cfg, false); err == nil {
			if tok, err := auth.Issue(secret, "dev-admin", auth.Admin, 24*time.Hour); err == nil {
				fmt.Fprintf(stdout, "GraphiQL: http://%s/graphiql   dev admin token (24 h; `orderflow token --sub ID --role customer|admin` makes others):\n  Authorization: Bearer %s\n", addr, tok)
			}
		}
	}
}
