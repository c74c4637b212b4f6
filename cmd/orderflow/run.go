package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/orderflow/orderflow/commands"
	customercmd "github.com/orderflow/orderflow/commands/customer"
	inventorycmd "github.com/orderflow/orderflow/commands/inventory"
	ordercmd "github.com/orderflow/orderflow/commands/order"
	paymentcmd "github.com/orderflow/orderflow/commands/payment"
	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/eventstore/esdb"
	"github.com/orderflow/orderflow/eventstore/postgres"
	"github.com/orderflow/orderflow/gateway"
	"github.com/orderflow/orderflow/internal/auth"
	"github.com/orderflow/orderflow/dev/cardsim"
	"github.com/orderflow/orderflow/internal/jobs"
	"github.com/orderflow/orderflow/dev/natsrv"
	"github.com/orderflow/orderflow/internal/ops"
	"github.com/orderflow/orderflow/dev/pgcluster"
	"github.com/orderflow/orderflow/internal/pgschema"
	"github.com/orderflow/orderflow/internal/progress"
	"github.com/orderflow/orderflow/wire"
	"github.com/orderflow/orderflow/projections"
	catalogrm "github.com/orderflow/orderflow/projections/catalog"
	customersrm "github.com/orderflow/orderflow/projections/customers"
	orderrm "github.com/orderflow/orderflow/projections/orders"
	catalogqueries "github.com/orderflow/orderflow/queries/catalog"
	customerqueries "github.com/orderflow/orderflow/queries/customers"
	orderqueries "github.com/orderflow/orderflow/queries/orders"
	"github.com/orderflow/orderflow/sagas/fulfillment"
)

const usage = `orderflow: a CQRS and event-sourced order platform

Usage:
  orderflow dev   [--http-addr ADDR] [--data-dir DIR]   the whole platform, zero configuration
  orderflow serve [--target=all|T1,T2] [--http-addr ADDR] targets: %s
  orderflow services [--json]                           live service instances, endpoints, request stats
  orderflow sagas list [--step S] [--stuck] | show ID  fulfillment sagas, their figures, the breaker
  orderflow projections list | status NAME | rebuild NAME | pause NAME | resume NAME | parked NAME | replay-parked NAME
                                                        read models: position, lag, blue/green rebuild, parked events
  orderflow health [--url URL]                          probe a running target (exit 0 when ready)
  orderflow token --sub ID [--role customer|admin]      a development bearer token for the gateway
  orderflow bench append [--writers N] [--duration D]   postgres append throughput vs raw INSERT
  orderflow bench saga [--orders N] [--rate R]          orders/s and latency placed→confirmed
  orderflow bench rebuild [--events N]                  orders read model rebuild vs raw COPY
  orderflow bench gateway [--clients N]                 GraphQL reads through the gateway vs the query services

Environment: DATABASE_URL, EVENTSTORE_URL, ORDERS_DATABASE_URL, CATALOG_DATABASE_URL,
CUSTOMERS_DATABASE_URL, NATS_URL, ORDERFLOW_HTTP_ADDR,
ORDERFLOW_DATA_DIR, ORDERFLOW_LOG_FORMAT (text|json), ORDERFLOW_LOG_LEVEL,
ORDERFLOW_CONSISTENCY_TIMEOUT, ORDERFLOW_NATS_PREFIX, ORDERFLOW_JWT_SECRET, ORDERFLOW_JWKS_FILE,
GATEWAY_RATE_LIMIT, GATEWAY_ADMIN_RATE_LIMIT, GATEWAY_CORS_ORIGINS, GATEWAY_INTROSPECTION,
GATEWAY_MAX_SUBSCRIPTIONS. See README.md.
`

// Main runs the command line args; it returns when the command is done or ctx ends.
func Main(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintf(stderr, usage, strings.Join(allTargets, ", "))
		return errors.New("no command given")
	}
	switch args[0] {
	case "dev", "serve":
		cfg, err := ParseFlags(args[0], args[1:], getenv, stderr)
		if err != nil {
			return err
		}
		return Run(ctx, cfg, stdout, stderr, nil)
	case "projections":
		return projectionsCmd(ctx, args[1:], getenv, stdout, stderr)
	case "sagas":
		return sagasCmd(ctx, args[1:], getenv, stdout, stderr)
	case "services":
		return services(ctx, args[1:], getenv, stdout, stderr)
	case "health":
		return health(ctx, args[1:], getenv, stdout, stderr)
	case "bench":
		return runBench(ctx, args[1:], getenv, stdout, stderr)
	case "token":
		return tokenCmd(args[1:], getenv, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprintf(stdout, usage, strings.Join(allTargets, ", "))
		return nil
	}
	fmt.Fprintf(stderr, usage, strings.Join(allTargets, ", "))
	return fmt.Errorf("unknown command %q", args[0])
}

func newLogger(cfg Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// cleanup runs functions in reverse order of registration.
type cleanup []func()

func (c *cleanup) add(f func()) { *c = append(*c, f) }
func (c cleanup) run() {
	for i := len(c) - 1; i >= 0; i-- {
		c[i]()
	}
}

// Run starts cfg's targets and blocks until ctx ends, then shuts down in order. onReady, if set,
// is called with the gateway's address once every target is up.
func Run(ctx context.Context, cfg Config, stdout, stderr io.Writer, onReady func(httpAddr string)) (err error) {
	log := newLogger(cfg, stderr)
	var done cleanup
	defer func() { done.run() }()

	// dev needs PostgreSQL for the read models, and for the event store unless it is EventStoreDB.
	if cfg.Dev && cfg.DatabaseURL == "" && (cfg.EventStoreURL == "" || cfg.OrdersDatabaseURL == "" || cfg.CatalogDatabaseURL == "" ||
		cfg.CustomersDatabaseURL == "" || cfg.SagasDatabaseURL == "") {
		url, stop, err := devDatabase(ctx, cfg.DataDir, log)
		if err != nil {
			return err
		}
		done.add(stop)
		cfg.DatabaseURL = url
		// Let the CLI run from this checkout find this platform's database.
		urlFile := filepath.Join(cfg.DataDir, databaseURLFile)
		if err := os.WriteFile(urlFile, []byte(url+"\n"), 0o600); err == nil {
			done.add(func() { _ = os.Remove(urlFile) })
		}
	}
	if err := cfg.resolve(); err != nil {
		return err
	}
	natsOpts := []nats.Option{nats.Name("orderflow " + strings.Join(cfg.Targets, ",")), nats.MaxReconnects(-1)}
	if cfg.NATSURL == "" {
		ns, err := natsrv.Start(natsrv.Options{StoreDir: filepath.Join(cfg.DataDir, "nats")})
		if err != nil {
			return err
		}
		// This process's services talk to the embedded server in memory, not over TCP: a third
		// of a gateway query's CPU was system calls on loopback sockets.
		natsOpts = append(natsOpts, ns.InProcess())
		done.add(ns.Stop)
		cfg.NATSURL = ns.URL()
		log.Info("embedded nats started", "url", cfg.NATSURL)
		// Let the CLI run from this checkout find this platform.
		urlFile := filepath.Join(cfg.DataDir, natsURLFile)
		if err := os.WriteFile(urlFile, []byte(cfg.NATSURL+"\n"), 0o644); err == nil {
			done.add(func() { _ = os.Remove(urlFile) })
		}
	}
	log.Info("config", "targets", strings.Join(cfg.Targets, ","), "http_addr", cfg.HTTPAddr,
		"eventstore_url", mask(cfg.EventStoreURL), "orders_database_url", mask(cfg.OrdersDatabaseURL),
		"catalog_database_url", mask(cfg.CatalogDatabaseURL), "customers_database_url", mask(cfg.CustomersDatabaseURL), "nats_url", mask(cfg.NATSURL), "nats_prefix", string(cfg.NATSNamespace))

	nc, err := nats.Connect(cfg.NATSURL, natsOpts...)
	if err != nil {
		return fmt.Errorf("connect to nats %s: %w", mask(cfg.NATSURL), err)
	}
	done.add(func() { _ = nc.Drain() })
	if err := checkNATSServer(nc.ConnectedServerVersion()); err != nil {
		return fmt.Errorf("nats %s: %w", mask(cfg.NATSURL), err)
	}

	svcCtx, stopServices := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	done.add(func() { stopServices(); wg.Wait() })
	var checks []func(context.Context) error
	metrics := prometheus.NewRegistry()
	projMetrics := projections.NewMetrics(metrics)
	checks = append(checks, func(context.Context) error {
		if !nc.IsConnected() {
			return errors.New("nats: not connected")
		}
		return nil
	})

	var store, rawStore eventstore.Store
	if cfg.needsEventStore() {
		var ping func(context.Context) error
		var err error
		store, ping, err = openEventStore(ctx, cfg.EventStoreURL, cfg.eventStoreConns(), log, &done)
		if err != nil {
			return err
		}
		checks = append(checks, ping)
		rawStore = store
		store = eventstore.WithUpcasters(store, upcasters)
		if pg, ok := store.(*postgres.Store); ok {
			metrics.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "orderflow_eventstore_horizon_age_seconds",
				Help: "Age of the oldest transaction on the event store's cluster: how long it holds every subscriber back."},
				func() float64 {
					ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
					defer cancel()
					age, _ := pg.HorizonAge(ctx)
					return age.Seconds()
				}))
		}
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	// The simulated card gateway: a separate HTTP service, here in this process.
	providerURL := cfg.PaymentProviderURL
	if cfg.runs("payment-provider") {
		url, stop, err := servePaymentProvider(cfg)
		if err != nil {
			return err
		}
		done.add(stop)
		if providerURL == "" {
			providerURL = url
		}
		log.Info("payment provider (simulated card gateway) listening", "url", url)
	}
	var provider paymentcmd.Provider
	if providerURL != "" {
		p := paymentcmd.NewHTTPProvider(providerURL, paymentcmd.HTTPProviderOptions{OnStateChange: func(from, to string) {
			log.Warn("payment provider circuit breaker", "from", from, "to", to)
		}})
		provider = p
		if cfg.runs("payment-commands") {
			breakerMetrics(metrics, p.BreakerState)
		}
	}
	// The command services of this process write through one Writer: one writer per stream, its
	// decided state cached (see commands.Writer).
	var writer eventstore.Store
	if store != nil {
		writer = commands.NewWriter(store, commands.WriterOptions{})
	}
	// Several inventory instances share out the products: each product's stock commands go to its
	// owner (see inventorycmd.Router); alone, an instance owns them all.
	inventoryRouter := inventorycmd.NewRouter(nc, cfg.NATSNamespace, log)
	commandTargets := []struct {
		target   string
		register func() error
		jobs     map[string]jobs.Handler
	}{
		{"order-commands", func() error {
			_, err := ordercmd.Register(svcCtx, nc, cfg.NATSNamespace, log, ordercmd.Handlers{Store: writer})
			return err
		}, ordercmd.Handlers{Store: writer}.Jobs()},
		{"customer-commands", func() error {
			_, err := customercmd.Register(svcCtx, nc, cfg.NATSNamespace, log, customercmd.Handlers{Store: writer})
			return err
		}, nil},
		{"inventory-commands", func() error {
			_, err := inventorycmd.Register(svcCtx, nc, cfg.NATSNamespace, log, inventorycmd.Handlers{Store: writer, Router: inventoryRouter})
			return err
		}, inventorycmd.Handlers{Store: writer, Router: inventoryRouter}.Jobs()},
		{"payment-commands", func() error {
			if provider == nil {
				log.Warn("payment-commands without a card gateway: set PAYMENT_PROVIDER_URL or run the payment-provider target; authorizations wait")
			}
			_, err := paymentcmd.Register(svcCtx, nc, cfg.NATSNamespace, log, paymentcmd.Handlers{Store: writer, Provider: provider})
			return err
		}, paymentcmd.Handlers{Store: writer, Provider: provider}.Jobs()},
	}
	for _, t := range commandTargets {
		if !cfg.runs(t.target) {
			continue
		}
		if err := t.register(); err != nil {
			return fmt.Errorf("%s: %w", t.target, err)
		}
		if t.jobs != nil {
			if err := jobs.Consume(svcCtx, js, cfg.NATSNamespace, t.target, log, t.jobs); err != nil {
				return fmt.Errorf("%s: %w", t.target, err)
			}
		}
	}
	if cfg.runs("fulfillment-saga") {
		if err := runSaga(ctx, svcCtx, cfg, store, nc, js, log, &done, &wg, &checks, metrics, projMetrics); err != nil {
			return err
		}
	}

	// Each read model: its own database (schema), its projection, its query service.
	readModels := []struct {
		url         string
		projection  projections.Projection
		queryTarget string
		serve       func(pool *pgxpool.Pool, w *progress.Waiter) error
	}{
		{cfg.OrdersDatabaseURL, orderrm.Projection{}, "order-queries", func(pool *pgxpool.Pool, w *progress.Waiter) error {
			_, err := orderqueries.Register(svcCtx, nc, cfg.NATSNamespace, log, orderqueries.Service{Pool: pool, ReadModel: progress.ReadModel{Waiter: w, ConsistencyTimeout: cfg.ConsistencyTimeout}})
			return err
		}},
		{cfg.CatalogDatabaseURL, catalogrm.Projection{}, "catalog-queries", func(pool *pgxpool.Pool, w *progress.Waiter) error {
			_, err := catalogqueries.Register(svcCtx, nc, cfg.NATSNamespace, log, catalogqueries.Service{Pool: pool, ReadModel: progress.ReadModel{Waiter: w, ConsistencyTimeout: cfg.ConsistencyTimeout},
				Cache: progress.NewCache[string, wire.Product](w, 10_000)})
			return err
		}},
		{cfg.CustomersDatabaseURL, customersrm.Projection{}, "customer-queries", func(pool *pgxpool.Pool, w *progress.Waiter) error {
			_, err := customerqueries.Register(svcCtx, nc, cfg.NATSNamespace, log, customerqueries.Service{Pool: pool, ReadModel: progress.ReadModel{Waiter: w, ConsistencyTimeout: cfg.ConsistencyTimeout},
				Cache: progress.NewCache[string, wire.Customer](w, 10_000)})
			return err
		}},
	}
	readModelPools := map[string]*pgxpool.Pool{}
	for _, rm := range readModels {
		name := rm.projection.Name()
		if !cfg.runs("projector") && !cfg.runs(rm.queryTarget) {
			continue
		}
		pool, err := openPool(ctx, rm.url, name, cfg.readModelConns(rm.queryTarget))
		if err != nil {
			return fmt.Errorf("%s read model: %w", name, err)
		}
		done.add(pool.Close)
		readModelPools[name] = pool
		checks = append(checks, pool.Ping)
		if cfg.runs("projector") {
			p := projections.New(store, pool, rm.projection, projections.Options{
				Log: log, Publish: projections.PublishJSON(nc.Publish, cfg.NATSNamespace.Progress(name)), Metrics: projMetrics,
			})
			projMetrics.Watch(p, headOf(store))
			if err := p.Migrate(ctx); err != nil {
				return err
			}
			wg.Add(1)
			go func() { defer wg.Done(); _ = p.Run(svcCtx) }()
			checks = append(checks, func(context.Context) error { return p.Health() })
		}
		if cfg.runs(rm.queryTarget) {
			w, err := progress.NewWaiter(nc, cfg.NATSNamespace.Progress(name), name, func(ctx context.Context) (eventstore.Position, error) {
				return projections.ReadCheckpoint(ctx, pool, name)
			})
			if err != nil {
				return err
			}
			done.add(w.Close)
			if err := rm.serve(pool, w); err != nil {
				return fmt.Errorf("%s: %w", rm.queryTarget, err)
			}
		}
	}

	if cfg.runs("projector") {
		ops := &projectionOps{ctx: svcCtx, cfg: cfg, store: store, head: headOf(rawStore), pools: readModelPools, log: log}
		if err := registerProjectionOps(svcCtx, nc, ops); err != nil {
			return fmt.Errorf("projections service: %w", err)
		}
	}

	// Every target serves HTTP: the gateway its API, the others /healthz and /readyz only.
	ready := func(ctx context.Context) error {
		for _, check := range checks {
			if err := check(ctx); err != nil {
				return err
			}
		}
		return nil
	}
	handler := ops.Handler(ready, metrics)
	if cfg.runs("gateway") {
		keys, err := gateway.NewIdempotencyKeys(ctx, nc, cfg.NATSNamespace)
		if err != nil {
			return err
		}
		v, err := verifier(cfg)
		if err != nil {
			return err
		}
		handler = gateway.New(gateway.Options{NC: nc, Namespace: cfg.NATSNamespace, Log: log, Ready: ready, Idempotency: keys, Metrics: metrics,
			CallTimeout: cfg.ConsistencyTimeout + 2*time.Second,
			Security: gateway.Security{Verifier: v, RateLimit: cfg.RateLimit, AdminRateLimit: cfg.AdminRateLimit, CORSOrigins: cfg.CORSOrigins,
				Introspection: cfg.Introspection, GraphiQL: cfg.Dev, MaxSubscriptions: cfg.MaxSubscriptions}})
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on %s (set ORDERFLOW_HTTP_ADDR to use another address): %w", cfg.HTTPAddr, err)
	}
	addr := ln.Addr().String()
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	serverErr := make(chan error, 1)
	go func() {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			serverErr <- err
		}
	}()
	done.add(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	})
	if cfg.runs("gateway") {
		fmt.Fprintf(stdout, "orderflow is up: REST http://%s/api/v1  GraphQL http://%s/graphql  (Ctrl-C stops)\n", addr, addr)
		if cfg.Dev && cfg.JWKSFile == "" {
			if secret, err := jwtSecret(cfg, false); err == nil {
				if tok, err := auth.Issue(secret, "dev-admin", auth.Admin, 24*time.Hour); err == nil {
					fmt.Fprintf(stdout, "GraphiQL: http://%s/graphiql   dev admin token (24 h; `orderflow token --sub ID --role customer|admin` makes others):\n  Authorization: Bearer %s\n", addr, tok)
				}
			}
		}
	} else {
		fmt.Fprintf(stdout, "orderflow %s is up: health http://%s/readyz\n", strings.Join(cfg.Targets, ","), addr)
	}
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

// openEventStore connects to the event store EVENTSTORE_URL names: postgres://… or esdb://….
func openEventStore(ctx context.Context, url string, conns int32, log *slog.Logger, done *cleanup) (eventstore.Store, func(context.Context) error, error) {
	if isESDB(url) {
		store, err := esdb.Open(url, esdb.Options{Log: log})
		if err != nil {
			return nil, nil, err
		}
		done.add(func() { _ = store.Close() })
		if err := store.Ping(ctx); err != nil {
			return nil, nil, fmt.Errorf("eventstoredb at %s: %w", mask(url), err)
		}
		log.Info("event store: EventStoreDB", "url", mask(url))
		return store, store.Ping, nil
	}
	pool, err := openPool(ctx, url, "", conns)
	if err != nil {
		return nil, nil, fmt.Errorf("event store: %w", err)
	}
	done.add(pool.Close)
	store := postgres.New(pool, postgres.Options{})
	if err := store.Migrate(ctx); err != nil {
		return nil, nil, err
	}
	return store, pool.Ping, nil
}

// upcasters turn stored events of old shapes into current ones for every reader. None yet: no
// event type has changed shape. A changed payload gets a new type name (order.placed.v2) and an
// entry here from the old one.
var upcasters = eventstore.Upcasters{}

// headOf returns the store's head-of-log function, if it has one.
func headOf(store eventstore.Store) func(context.Context) (eventstore.Position, error) {
	if h, ok := store.(interface {
		Head(context.Context) (eventstore.Position, error)
	}); ok {
		return h.Head
	}
	return nil
}

func openPool(ctx context.Context, url, schema string, maxConns int32) (*pgxpool.Pool, error) {
	pool, err := pgschema.Open(ctx, url, schema, maxConns)
	if err != nil {
		return nil, err
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to %s: %w", mask(url), err)
	}
	return pool, nil
}

// devDatabase starts (or adopts) the private cluster under dataDir and returns the URL of its
// "orderflow" database.
func devDatabase(ctx context.Context, dataDir string, log *slog.Logger) (string, func(), error) {
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return "", nil, err
	}
	cluster, err := pgcluster.Start(ctx, pgcluster.Options{Dir: filepath.Join(dataDir, "pg"), Log: func(msg string, args ...any) { log.Info(msg, args...) }})
	if err != nil {
		return "", nil, fmt.Errorf("dev database: %w (or set DATABASE_URL)", err)
	}
	stop := func() {
		if err := cluster.Stop(); err != nil {
			log.Warn("stop postgres", "err", err)
		}
	}
	conn, err := pgx.Connect(ctx, cluster.URL("postgres"))
	if err != nil {
		stop()
		return "", nil, err
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, `select exists (select 1 from pg_database where datname = 'orderflow')`).Scan(&exists); err != nil {
		stop()
		return "", nil, err
	}
	if !exists {
		if _, err := conn.Exec(ctx, `create database orderflow`); err != nil {
			stop()
			return "", nil, err
		}
	}
	// A cluster that dies (killed, crashed, stopped from outside) is said loudly and started again:
	// the services answer "unavailable" meanwhile and their pools reconnect.
	superviseCtx, stopSupervising := context.WithCancel(context.WithoutCancel(ctx))
	go cluster.Supervise(superviseCtx, func(msg string, args ...any) { log.Error(msg, args...) })
	return cluster.URL("orderflow"), func() { stopSupervising(); stop() }, nil
}

// health probes a running target's /readyz (or --url): for container health checks, where the
// image has no curl.
func health(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("health", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := getenv("ORDERFLOW_HTTP_ADDR")
	if addr == "" {
		addr = "127.0.0.1:8080"
	}
	if host, port, err := net.SplitHostPort(addr); err == nil && (host == "" || host == "0.0.0.0" || host == "::") {
		addr = net.JoinHostPort("127.0.0.1", port)
	}
	url := fs.String("url", "http://"+addr+"/readyz", "URL to probe")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("health %s: %w", *url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	fmt.Fprintf(stdout, "%s %s", resp.Status, body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("health %s: %s", *url, resp.Status)
	}
	return nil
}

// servePaymentProvider runs the simulated card gateway on cfg.PaymentProviderAddr.
func servePaymentProvider(cfg Config) (string, func(), error) {
	ln, err := net.Listen("tcp", cfg.PaymentProviderAddr)
	if err != nil {
		return "", nil, fmt.Errorf("payment provider: listen on %s (PAYMENT_PROVIDER_ADDR): %w", cfg.PaymentProviderAddr, err)
	}
	srv := &http.Server{Handler: cardsim.New(cfg.PaymentProvider).Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	addr := ln.Addr().String()
	if host, port, err := net.SplitHostPort(addr); err == nil && (host == "0.0.0.0" || host == "::") {
		addr = net.JoinHostPort("127.0.0.1", port)
	}
	return "http://" + addr, func() { _ = srv.Close() }, nil
}

// runSaga starts the fulfillment saga: its projection, its outbox dispatcher, its deadlines and
// its query endpoints.
func runSaga(ctx, svcCtx context.Context, cfg Config, store eventstore.Store, nc *nats.Conn, js jetstream.JetStream, log *slog.Logger, done *cleanup, wg *sync.WaitGroup, checks *[]func(context.Context) error, metrics *prometheus.Registry, projMetrics *projections.Metrics) error {
	pool, err := openPool(ctx, cfg.SagasDatabaseURL, fulfillment.Name, connections["fulfillment-saga"].sagas)
	if err != nil {
		return fmt.Errorf("fulfillment saga: %w", err)
	}
	done.add(pool.Close)
	*checks = append(*checks, pool.Ping)
	saga := fulfillment.New(pool, fulfillment.Options{PaymentTimeout: cfg.PaymentTimeout, StepTimeout: cfg.StepTimeout}, log)
	publish := projections.PublishJSON(nc.Publish, cfg.NATSNamespace.Progress(fulfillment.Name))
	p := projections.New(store, pool, saga, projections.Options{Log: log, Metrics: projMetrics, Publish: func(pr wire.Progress) {
		saga.Wake()
		publish(pr)
	}})
	projMetrics.Watch(p, headOf(store))
	if err := p.Migrate(ctx); err != nil {
		return err
	}
	*checks = append(*checks, func(context.Context) error { return p.Health() })
	wg.Add(3)
	go func() { defer wg.Done(); _ = p.Run(svcCtx) }()
	go func() { defer wg.Done(); _ = saga.Dispatch(svcCtx, js, cfg.NATSNamespace) }()
	go func() { defer wg.Done(); _ = saga.Deadlines(svcCtx, 250*time.Millisecond) }()
	w, err := progress.NewWaiter(nc, cfg.NATSNamespace.Progress(fulfillment.Name), fulfillment.Name, func(ctx context.Context) (eventstore.Position, error) {
		return projections.ReadCheckpoint(ctx, pool, fulfillment.Name)
	})
	if err != nil {
		return err
	}
	done.add(w.Close)
	q := fulfillment.Queries{Saga: saga, ReadModel: progress.ReadModel{Waiter: w, ConsistencyTimeout: cfg.ConsistencyTimeout}}
	sagaMetrics(metrics, func(ctx context.Context) (wire.FulfillmentCounts, error) { return q.Counts(ctx, struct{}{}) })
	_, err = fulfillment.Register(svcCtx, nc, cfg.NATSNamespace, log, q)
	return err
}

// minNATSServer is the oldest nats-server orderflow's JetStream consumers work with (multiple
// filter subjects on one consumer came with 2.10).
var minNATSServer = [3]int{2, 10, 0}

// checkNATSServer refuses a server older than minNATSServer with a message that says so, instead
// of the JetStream error the first consumer would meet.
func checkNATSServer(version string) error {
	var v [3]int
	core, _, _ := strings.Cut(strings.TrimPrefix(version, "v"), "-")
	parts := strings.SplitN(core, ".", 3)
	for i := range min(len(parts), 3) {
		n, err := strconv.Atoi(parts[i])
		if err != nil {
			return fmt.Errorf("cannot read the server's version %q: orderflow needs nats-server %d.%d or newer", version, minNATSServer[0], minNATSServer[1])
		}
		v[i] = n
	}
	if slices.Compare(v[:], minNATSServer[:]) < 0 {
		return fmt.Errorf("the server is nats-server %s: orderflow needs %d.%d or newer, with JetStream (or leave NATS_URL unset: the binary embeds one)", version, minNATSServer[0], minNATSServer[1])
	}
	return nil
}
