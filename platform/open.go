// What a process opens and shares: its logger and cleanups, the event store and the databases'
// pools, the development cluster, the token keys, the debug server.

package platform

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"expvar"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	httppprof "net/http/pprof"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/orderflow/orderflow/dev/pgcluster"
	"github.com/orderflow/orderflow/domain"
	"github.com/orderflow/orderflow/domain/customer"
	"github.com/orderflow/orderflow/domain/inventory"
	"github.com/orderflow/orderflow/domain/order"
	"github.com/orderflow/orderflow/domain/payment"
	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/eventstore/esdb"
	"github.com/orderflow/orderflow/eventstore/personal"
	"github.com/orderflow/orderflow/eventstore/postgres"
	"github.com/orderflow/orderflow/internal/auth"
	"github.com/orderflow/orderflow/internal/pgschema"
	"github.com/orderflow/orderflow/internal/telemetry"
	"github.com/orderflow/orderflow/target"
)

// metricsRegistry is a process's registry, with the RED metrics of every endpoint.
func metricsRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	telemetry.Register(reg)
	return reg
}

// eventStoreConns is the size of a process's event store pool: its targets' shares, 2 to 20; 0
// when none of them uses the store.
func eventStoreConns(targets []target.Target) int32 {
	var n int32
	for _, t := range targets {
		n += t.EventStoreConns
	}
	if n == 0 {
		return 0
	}
	return min(max(n, 2), 20)
}

// databaseConns is the pool of each schema a process's targets use, one for writers and one for
// readers (Reads): the sum of their shares, at least 2.
func databaseConns(targets []target.Target) []target.Database {
	var out []target.Database
	for _, t := range targets {
		for _, db := range t.Databases {
			i := slices.IndexFunc(out, func(o target.Database) bool { return o.Schema == db.Schema && o.Reads == db.Reads })
			if i < 0 {
				out = append(out, target.Database{Schema: db.Schema, Reads: db.Reads})
				i = len(out) - 1
			}
			out[i].Conns += db.Conns
		}
	}
	for i := range out {
		out[i].Conns = max(out[i].Conns, 2)
	}
	return out
}

// NewLogger is the process's logger: text or JSON, at cfg's level, lines joined to their traces.
func NewLogger(cfg Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: logLevel(cfg)}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if cfg.LogFormat == "json" {
		h = slog.NewJSONHandler(w, opts)
	}
	// Lines carry their trace; a flood of one warning is a line per 10 s with a count.
	return slog.New(telemetry.NewQuieter(telemetry.LogHandler{Handler: h}, 10*time.Second))
}

func logLevel(cfg Config) slog.Level {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	return level
}

// LogExporter, if set, is where every target's log records go besides its output, as OTLP export
// would send them (tests; OTEL_EXPORTER_OTLP_ENDPOINT otherwise).
var LogExporter sdklog.Exporter

// openLogs sets up the export of logs cfg asks for (nil: none), flushed at done.
func openLogs(ctx context.Context, cfg Config, done *Cleanup) (*telemetry.Logs, error) {
	exp := LogExporter
	if exp == nil {
		var err error
		if exp, err = telemetry.LogExporter(ctx, cfg.Logs); err != nil || exp == nil {
			return nil, err
		}
	}
	logs := telemetry.NewLogs(sdklog.NewBatchProcessor(exp), telemetry.Service(cfg.Targets))
	done.Add(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = logs.Shutdown(ctx) // flush what is still buffered
	})
	return logs, nil
}

// MetricExporter, if set, is where the process's metrics go, as OTLP export would send them
// (tests; OTEL_EXPORTER_OTLP_ENDPOINT otherwise).
var MetricExporter sdkmetric.Exporter

// openMetrics sets up the export of reg's metrics cfg asks for, if any; the last figures are sent
// at done.
func openMetrics(ctx context.Context, cfg Config, reg prometheus.Gatherer, done *Cleanup) error {
	exp := MetricExporter
	if exp == nil {
		var err error
		if exp, err = telemetry.MetricExporter(ctx, cfg.Metrics); err != nil || exp == nil {
			return err
		}
	}
	stop := telemetry.PushMetrics(reg, exp, cfg.MetricInterval, telemetry.Service(cfg.Targets), cfg.Targets)
	done.Add(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = stop(ctx)
	})
	return nil
}

// exported is l whose records also go to h (a target's OpenTelemetry logs; nil: none), at cfg's
// level.
func exported(l *slog.Logger, h slog.Handler, cfg Config) *slog.Logger {
	if h == nil {
		return l
	}
	return slog.New(telemetry.Tee(l.Handler(), telemetry.AtLeast(h, logLevel(cfg))))
}

// Cleanup runs functions in reverse order of registration.
type Cleanup []func()

func (c *Cleanup) Add(f func()) { *c = append(*c, f) }
func (c Cleanup) Run() {
	for i := len(c) - 1; i >= 0; i-- {
		c[i]()
	}
}

// openEventStore connects to the event store EVENTSTORE_URL names: postgres://… or esdb://….
func OpenEventStore(ctx context.Context, url string, conns int32, log *slog.Logger, done *Cleanup) (eventstore.Store, func(context.Context) error, error) {
	if isESDB(url) {
		store, err := esdb.Open(url, esdb.Options{Log: log})
		if err != nil {
			return nil, nil, err
		}
		done.Add(func() { _ = store.Close() })
		if err := store.Ping(ctx); err != nil {
			return nil, nil, fmt.Errorf("eventstoredb at %s: %w", Mask(url), err)
		}
		log.Info("event store: EventStoreDB", "url", Mask(url))
		return store, store.Ping, nil
	}
	pool, err := OpenPool(ctx, url, "", conns)
	if err != nil {
		return nil, nil, fmt.Errorf("event store: %w", err)
	}
	done.Add(pool.Close)
	store := postgres.New(pool, postgres.Options{})
	if err := store.Migrate(ctx); err != nil {
		return nil, nil, err
	}
	return store, pool.Ping, nil
}

// Personal are the event fields that hold personal data, encrypted per person in the log
// (package personal): the customers' name, e-mail address and shipping address.
var Personal = personal.SpecOf(customer.Personal...)

// KeyCacheTTL is how long a process keeps a data key (or that its person is erased) in memory:
// another process's erasure is seen by this one within it.
const KeyCacheTTL = time.Minute

// Readable returns the event store raw as every reader and writer of the platform uses it: personal
// data encrypted on append and decrypted (or redacted, once erased) on read, with the data keys of
// cfg's database (schema personal.Schema); old event shapes upcast. It answers the keys too.
func Readable(ctx context.Context, cfg Config, raw eventstore.Store, done *Cleanup) (eventstore.Store, personal.Keys, error) {
	pool, err := OpenPool(ctx, cfg.SchemaURL(personal.Schema), personal.Schema, 4)
	if err != nil {
		return nil, nil, fmt.Errorf("data keys: %w", err)
	}
	done.Add(pool.Close)
	pk := personal.PostgresKeys{Pool: pool}
	if err := pk.Migrate(ctx); err != nil {
		return nil, nil, fmt.Errorf("data keys: %w", err)
	}
	keys := personal.NewCache(pk, KeyCacheTTL, 100_000)
	return eventstore.WithUpcasters(personal.Protect(raw, Personal, keys), Upcasters), keys, nil
}

// Upcasters turn stored events of old shapes into current ones for every reader: the upcasts
// each context's codec registers (domain.Codec.Upcast). None yet: no event type has changed shape.
var Upcasters = upcastersOf(order.Codec.Upcasts(), customer.Codec.Upcasts(), inventory.Codec.Upcasts(), payment.Codec.Upcasts())

func upcastersOf(codecs ...map[string]domain.Upcaster) eventstore.Upcasters {
	out := eventstore.Upcasters{}
	for _, upcasts := range codecs {
		for from, up := range upcasts {
			out[from] = func(e eventstore.RecordedEvent) (eventstore.RecordedEvent, error) {
				typ, data, err := up(e.Data)
				e.Type, e.Data = typ, data
				return e, err
			}
		}
	}
	return out
}

// HeadOf returns the store's head-of-log function, if it has one.
func HeadOf(store eventstore.Store) func(context.Context) (eventstore.Position, error) {
	if h, ok := store.(interface {
		Head(context.Context) (eventstore.Position, error)
	}); ok {
		return h.Head
	}
	return nil
}

func OpenPool(ctx context.Context, url, schema string, maxConns int32) (*pgxpool.Pool, error) {
	return ping(ctx, url)(pgschema.Open(ctx, url, schema, maxConns))
}

// OpenReadPool is OpenPool for a query service's reads (pgschema.OpenReads).
func OpenReadPool(ctx context.Context, url, schema string, maxConns int32) (*pgxpool.Pool, error) {
	return ping(ctx, url)(pgschema.OpenReads(ctx, url, schema, maxConns))
}

// ping checks that a pool just opened reaches its database.
func ping(ctx context.Context, url string) func(*pgxpool.Pool, error) (*pgxpool.Pool, error) {
	return func(pool *pgxpool.Pool, err error) (*pgxpool.Pool, error) {
		if err != nil {
			return nil, err
		}
		if err := pool.Ping(ctx); err != nil {
			pool.Close()
			return nil, fmt.Errorf("connect to %s: %w", Mask(url), err)
		}
		return pool, nil
	}
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

// minNATSServer is the oldest nats-server orderflow's JetStream consumers work with (multiple
// filter subjects on one consumer came with 2.10).
var minNATSServer = [3]int{2, 10, 0}

// CheckNATSServer refuses a server older than minNATSServer with a message that says so, instead
// of the JetStream error the first consumer would meet.
func CheckNATSServer(version string) error {
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

// jwtSecretFile is where `orderflow dev` keeps the secret of its tokens, so that `orderflow
// token` run from the same checkout issues tokens that platform accepts, across restarts.
const jwtSecretFile = "jwt.secret"

// JWTSecret is ORDERFLOW_JWT_SECRET, else (create) the dev secret in dataDir.
func JWTSecret(cfg Config, create bool) ([]byte, error) {
	if cfg.JWTSecret != "" {
		return []byte(cfg.JWTSecret), nil
	}
	path := filepath.Join(cfg.DataDir, jwtSecretFile)
	if b, err := os.ReadFile(path); err == nil {
		return []byte(strings.TrimSpace(string(b))), nil
	} else if !create {
		return nil, fmt.Errorf("no ORDERFLOW_JWT_SECRET and no %s: run `make run` first in this checkout, or set ORDERFLOW_JWT_SECRET", path)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, err
	}
	secret := hex.EncodeToString(raw)
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("keep the dev token secret: %w", err)
	}
	return []byte(secret), nil
}

// Verifier is how the gateway checks tokens: the JWKS file's keys, else the HS256 secret (dev
// makes one).
func Verifier(cfg Config) (*auth.Verifier, error) {
	switch {
	case cfg.JWKSFile != "":
		return auth.JWKSFile(cfg.JWKSFile)
	case cfg.JWTSecret != "" || cfg.Dev:
		secret, err := JWTSecret(cfg, cfg.Dev)
		if err != nil {
			return nil, err
		}
		var previous [][]byte
		if cfg.JWTPreviousSecret != "" {
			previous = append(previous, []byte(cfg.JWTPreviousSecret))
		}
		return auth.HS256(secret, previous...)
	}
	return nil, errors.New("the gateway needs ORDERFLOW_JWT_SECRET (HS256, at least 32 bytes) or ORDERFLOW_JWKS_FILE (RS256)")
}

// labelled runs f, and the goroutines it starts, labelled target=name in CPU profiles
// (ORDERFLOW_DEBUG_ADDR): what each target of a process costs, read from one profile.
func labelled(ctx context.Context, name string, f func(context.Context)) {
	pprof.Do(ctx, pprof.Labels("target", name), f)
}

// serveDebug serves Go's profiles (/debug/pprof/) and runtime figures (/debug/vars) on addr.
func serveDebug(addr string, log *slog.Logger) (stop func(), err error) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", httppprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", httppprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", httppprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", httppprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", httppprof.Trace)
	mux.Handle("/debug/vars", expvar.Handler())
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("ORDERFLOW_DEBUG_ADDR %s: %w", addr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	log.Info("debug: profiles and runtime figures", "url", "http://"+ln.Addr().String()+"/debug/pprof/")
	return func() { _ = srv.Close() }, nil
}
