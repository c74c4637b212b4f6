package platform

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/orderflow/orderflow/dev/cardsim"
	"github.com/orderflow/orderflow/gateway"
	"github.com/orderflow/orderflow/internal/telemetry"
	"github.com/orderflow/orderflow/projections"
	"github.com/orderflow/orderflow/target"
	"github.com/orderflow/orderflow/wire"
)

// EnvVars are every environment variable the binary reads (ParseFlags); deploy files and the
// README may name only these, and must name them all (deploy tests).
var EnvVars = []string{
	"ORDERFLOW_HTTP_ADDR", "ORDERFLOW_DATA_DIR", "DATABASE_URL", "EVENTSTORE_URL", "ORDERS_DATABASE_URL",
	"CATALOG_DATABASE_URL", "CUSTOMERS_DATABASE_URL", "SAGAS_DATABASE_URL", "FULFILLMENT_PAYMENT_TIMEOUT", "FULFILLMENT_STEP_TIMEOUT", "FULFILLMENT_LINGER",
	"PAYMENT_PROVIDER_URL", "PAYMENT_PROVIDER_ADDR", "PAYMENT_PROVIDER_LATENCY", "PAYMENT_PROVIDER_DECLINE_RATE", "PAYMENT_PROVIDER_OUTAGE",
	"NATS_URL", "ORDERFLOW_NATS_PREFIX", "ORDERFLOW_LOG_FORMAT", "ORDERFLOW_LOG_LEVEL", "ORDERFLOW_CONSISTENCY_TIMEOUT",
	"ORDERFLOW_JWT_SECRET", "ORDERFLOW_JWKS_FILE", "GATEWAY_RATE_LIMIT", "GATEWAY_ADMIN_RATE_LIMIT", "GATEWAY_CORS_ORIGINS", "GATEWAY_INTROSPECTION",
	"GATEWAY_MAX_SUBSCRIPTIONS", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL",
	"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "OTEL_LOGS_EXPORTER", "OTEL_TRACES_EXPORTER",
	"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "OTEL_METRICS_EXPORTER", "OTEL_METRIC_EXPORT_INTERVAL", "ORDERFLOW_NATS_SEEDS", "ORDERFLOW_NATS_INSECURE", "ORDERFLOW_NATS_CA", "ORDERFLOW_NATS_CERT", "ORDERFLOW_NATS_KEY", "ORDERFLOW_JWT_PREVIOUS_SECRET",
	"ORDERFLOW_DEBUG_ADDR", "GOGC", "GOMEMLIMIT",
}

// Config is read once, here, from flags and the environment.
type Config struct {
	// Dev starts what is missing (a private PostgreSQL cluster, an embedded NATS server).
	Dev bool
	// Targets to run in this process.
	Targets []string
	// HTTPAddr is the gateway's address (ORDERFLOW_HTTP_ADDR).
	HTTPAddr string
	// DatabaseURL is the default for every database below (DATABASE_URL).
	DatabaseURL string
	// EventStoreURL selects the event store: esdb://… for EventStoreDB, postgres://… for
	// PostgreSQL (EVENTSTORE_URL; default DatabaseURL).
	EventStoreURL string
	// OrdersDatabaseURL holds the orders read model (ORDERS_DATABASE_URL; default DatabaseURL).
	OrdersDatabaseURL string
	// CatalogDatabaseURL holds the catalog read model (CATALOG_DATABASE_URL; default DatabaseURL).
	CatalogDatabaseURL string
	// CustomersDatabaseURL holds the customers read model (CUSTOMERS_DATABASE_URL; default DatabaseURL).
	CustomersDatabaseURL string
	// SagasDatabaseURL holds the sagas' state (SAGAS_DATABASE_URL; default DatabaseURL).
	SagasDatabaseURL string
	// PaymentTimeout is how long the fulfillment saga waits for a payment authorization
	// (FULFILLMENT_PAYMENT_TIMEOUT; default 2m).
	PaymentTimeout time.Duration
	// StepTimeout is how long the fulfillment saga waits for the answer to a reservation,
	// confirmation or compensation before sending it again (FULFILLMENT_STEP_TIMEOUT; default 30s).
	StepTimeout time.Duration
	// SagaLinger is how long a batch of the fulfillment saga waits for more events
	// (FULFILLMENT_LINGER; default projections.DefaultLinger, 10ms): longer batches cost less CPU
	// per order and add up to that much to each of an order's four steps.
	SagaLinger time.Duration
	// PaymentProviderURL is the card gateway the payment service calls (PAYMENT_PROVIDER_URL);
	// empty uses the payment-provider target of this process, if it runs one.
	PaymentProviderURL string
	// PaymentProvider configures the simulated gateway of the payment-provider target:
	// PAYMENT_PROVIDER_ADDR (default 127.0.0.1:0), _LATENCY (20ms), _DECLINE_RATE (0), _OUTAGE.
	PaymentProvider cardsim.Settings
	// NATSURL of the NATS server (NATS_URL); empty starts an embedded server.
	NATSURL string
	// NATSSeeds is a directory with one nkey seed per identity (<target>.nk): each target connects
	// as itself (ORDERFLOW_NATS_SEEDS). The embedded server makes its own.
	NATSSeeds string
	// NATSInsecure connects to NATS_URL without credentials (ORDERFLOW_NATS_INSECURE; development
	// and tests only): without it, and without seeds, serve refuses to start. With seeds too, the
	// seeds' keys still sign and check callers' assertions; only NATS does not ask who connects.
	NATSInsecure bool
	// NATSTLS is how the process reaches NATS over TLS: the authority it trusts
	// (ORDERFLOW_NATS_CA, PEM) and its client certificate for mutual TLS (ORDERFLOW_NATS_CERT and
	// ORDERFLOW_NATS_KEY). Empty: the URL's scheme decides (tls:// verifies with the system's roots).
	NATSTLS NATSTLS
	// NATSNamespace prefixes every subject (ORDERFLOW_NATS_PREFIX; default orderflow).
	NATSNamespace wire.Namespace
	// DataDir keeps the dev cluster and embedded NATS data (ORDERFLOW_DATA_DIR; default .orderflow).
	DataDir string
	// LogFormat is text or json (ORDERFLOW_LOG_FORMAT; text in dev, json otherwise).
	LogFormat string
	// LogLevel is debug, info, warn or error (ORDERFLOW_LOG_LEVEL; default info).
	LogLevel string
	// ConsistencyTimeout bounds a read-your-writes wait (ORDERFLOW_CONSISTENCY_TIMEOUT; default 3s).
	ConsistencyTimeout time.Duration
	// JWTSecret verifies HS256 bearer tokens (ORDERFLOW_JWT_SECRET, at least 32 bytes); dev
	// makes one and keeps it in DataDir. JWKSFile verifies RS256 tokens instead
	// (ORDERFLOW_JWKS_FILE). The gateway target needs one of them.
	JWTSecret, JWKSFile string
	// JWTPreviousSecret is still accepted while a rotation of JWTSecret is under way
	// (ORDERFLOW_JWT_PREVIOUS_SECRET): set the new secret and this one to the old, and drop it once
	// the old tokens have expired.
	JWTPreviousSecret string
	// RateLimit is requests per second per customer token at the gateway (GATEWAY_RATE_LIMIT;
	// default 20; 0 turns it off); AdminRateLimit the same per admin token
	// (GATEWAY_ADMIN_RATE_LIMIT; default 0: admins are not limited).
	RateLimit, AdminRateLimit int
	// MaxSubscriptions bounds the live GraphQL subscriptions one gateway serves
	// (GATEWAY_MAX_SUBSCRIPTIONS; default 5000).
	MaxSubscriptions int
	// CORSOrigins may call the gateway from a browser (GATEWAY_CORS_ORIGINS, comma-separated, *
	// for any; default none, * in dev).
	CORSOrigins []string
	// Introspection of the GraphQL schema (GATEWAY_INTROSPECTION; default true in dev, else false).
	Introspection bool
	// Traces turns trace export on: OTEL_EXPORTER_OTLP_ENDPOINT or _TRACES_ENDPOINT, over
	// OTEL_EXPORTER_OTLP_PROTOCOL (the SDK reads the other OTEL_* variables itself).
	Traces telemetry.Exporter
	// Logs turns log export on: the same variables as Traces (OTEL_EXPORTER_OTLP_LOGS_ENDPOINT
	// for logs only), unless OTEL_LOGS_EXPORTER=none. Output logs stay as they are.
	Logs telemetry.Exporter
	// Metrics turns metric export on: the same variables as Traces (OTEL_EXPORTER_OTLP_METRICS_ENDPOINT
	// for metrics only), unless OTEL_METRICS_EXPORTER=none; every MetricInterval
	// (OTEL_METRIC_EXPORT_INTERVAL in milliseconds; default 60 s) the process sends what /metrics
	// serves. /metrics stays as it is.
	Metrics        telemetry.Exporter
	MetricInterval time.Duration
	// DebugAddr, if set, serves Go's profiles (/debug/pprof/, each target's goroutines labelled
	// target=<name>) and runtime figures (/debug/vars) there (ORDERFLOW_DEBUG_ADDR; keep it on
	// localhost or a private network).
	DebugAddr string
	// GCPercent is the garbage collector's target the process sets for itself unless GOGC is
	// set (DefaultGCPercent); 0 leaves the runtime's. MemoryLimit, unless GOMEMLIMIT is set, is
	// 80% of the memory its cgroup may use, when one limits it (0: none).
	GCPercent   int
	MemoryLimit int64
}

// DefaultGCPercent is the platform's GOGC: a collection when the heap has grown by four times
// what survived the last one, not once. The heap of a service is a few tens of MB live and mostly
// short-lived garbage per request: at Go's default of 100, collection took a quarter of the CPU
// of an order; memory is the cheaper resource here (MemoryLimit keeps it within a container's).
const DefaultGCPercent = 400

// ParseFlags reads the command line of `serve` or `dev` and the environment into a Config.
func ParseFlags(cmd string, args []string, getenv func(string) string, stderr io.Writer) (Config, error) {
	env := environment(getenv)
	c := Config{Dev: cmd == "dev"}
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	targets := fs.String("target", "all", "comma-separated targets to run: all, or any of "+strings.Join(TargetNames(), ", "))
	fs.StringVar(&c.HTTPAddr, "http-addr", env.or("ORDERFLOW_HTTP_ADDR", "127.0.0.1:8080"), "gateway listen address")
	fs.StringVar(&c.DataDir, "data-dir", env.or("ORDERFLOW_DATA_DIR", ".orderflow"), "where dev keeps its PostgreSQL cluster and NATS data")
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("%s: unexpected arguments %q", cmd, fs.Args())
	}
	for _, read := range []func(environment) error{c.readDatabases, c.readFulfillment, c.readNATS, c.readProcess, c.readGateway} {
		if err := read(env); err != nil {
			return Config{}, err
		}
	}
	var err error
	if c.Targets, err = parseTargets(*targets); err != nil {
		return Config{}, err
	}
	return c, nil
}

// environment reads the process's environment variables.
type environment func(string) string

// or is the variable key, or def when it is unset or empty.
func (e environment) or(key, def string) string {
	if v := e(key); v != "" {
		return v
	}
	return def
}

// readDatabases reads where the event store and the read models' databases are.
func (c *Config) readDatabases(env environment) error {
	c.DatabaseURL = env("DATABASE_URL")
	c.EventStoreURL = env("EVENTSTORE_URL")
	c.OrdersDatabaseURL = env("ORDERS_DATABASE_URL")
	c.CatalogDatabaseURL = env("CATALOG_DATABASE_URL")
	c.CustomersDatabaseURL = env("CUSTOMERS_DATABASE_URL")
	c.SagasDatabaseURL = env("SAGAS_DATABASE_URL")
	return nil
}

// readFulfillment reads the saga's timeouts and the card gateway's settings.
func (c *Config) readFulfillment(env environment) error {
	c.PaymentProviderURL = env("PAYMENT_PROVIDER_URL")
	c.PaymentProvider.Addr = env.or("PAYMENT_PROVIDER_ADDR", "127.0.0.1:0")
	var perr error
	durationEnv := func(key, def string) time.Duration {
		d, err := time.ParseDuration(env.or(key, def))
		if err != nil || d < 0 {
			perr = errors.Join(perr, fmt.Errorf("%s: want a duration such as %s", key, def))
		}
		return d
	}
	c.PaymentTimeout = durationEnv("FULFILLMENT_PAYMENT_TIMEOUT", "2m")
	c.StepTimeout = durationEnv("FULFILLMENT_STEP_TIMEOUT", "30s")
	c.SagaLinger = durationEnv("FULFILLMENT_LINGER", projections.DefaultLinger.String())
	c.PaymentProvider.Latency = durationEnv("PAYMENT_PROVIDER_LATENCY", "20ms")
	if rate, err := strconv.ParseFloat(env.or("PAYMENT_PROVIDER_DECLINE_RATE", "0"), 64); err != nil || rate < 0 || rate > 1 {
		perr = errors.Join(perr, errors.New("PAYMENT_PROVIDER_DECLINE_RATE: want a number between 0 and 1"))
	} else {
		c.PaymentProvider.DeclineRate = rate
	}
	c.PaymentProvider.Outage = env.or("PAYMENT_PROVIDER_OUTAGE", "false") == "true"
	return perr
}

// readNATS reads how the targets reach NATS: its URL, identities, TLS and namespace.
func (c *Config) readNATS(env environment) error {
	c.NATSURL = env("NATS_URL")
	c.NATSSeeds = env("ORDERFLOW_NATS_SEEDS")
	insecure, err := strconv.ParseBool(env.or("ORDERFLOW_NATS_INSECURE", "false"))
	if err != nil {
		return errors.New("ORDERFLOW_NATS_INSECURE: want true or false")
	}
	c.NATSInsecure = insecure
	c.NATSTLS = NATSTLSFromEnv(env)
	if (c.NATSTLS.Cert == "") != (c.NATSTLS.Key == "") {
		return errors.New("ORDERFLOW_NATS_CERT and ORDERFLOW_NATS_KEY: set both (a client certificate and its key) or neither")
	}
	c.NATSNamespace = wire.Namespace(env.or("ORDERFLOW_NATS_PREFIX", string(wire.DefaultNamespace)))
	if strings.ContainsAny(string(c.NATSNamespace), " *>\t") || strings.HasPrefix(string(c.NATSNamespace), ".") || strings.HasSuffix(string(c.NATSNamespace), ".") {
		return fmt.Errorf("ORDERFLOW_NATS_PREFIX %q: want NATS subject tokens such as orderflow or staging.orderflow", c.NATSNamespace)
	}
	return nil
}

// readProcess reads the process's own settings: tracing, debugging, memory, logs, the
// read-your-writes timeout.
func (c *Config) readProcess(env environment) error {
	c.Traces = telemetry.ExporterFromEnv(env)
	c.Logs = telemetry.LogsFromEnv(env)
	c.Metrics = telemetry.MetricsFromEnv(env)
	if v := env("OTEL_METRIC_EXPORT_INTERVAL"); v != "" {
		ms, err := strconv.Atoi(v)
		if err != nil || ms <= 0 {
			return fmt.Errorf("OTEL_METRIC_EXPORT_INTERVAL %q: want milliseconds, e.g. 10000", v)
		}
		c.MetricInterval = time.Duration(ms) * time.Millisecond
	}
	c.DebugAddr = env("ORDERFLOW_DEBUG_ADDR")
	if env("GOGC") == "" {
		c.GCPercent = DefaultGCPercent
	}
	if env("GOMEMLIMIT") == "" {
		c.MemoryLimit = cgroupMemoryLimit() / 10 * 8
	}
	c.LogFormat = env.or("ORDERFLOW_LOG_FORMAT", map[bool]string{true: "text", false: "json"}[c.Dev])
	c.LogLevel = env.or("ORDERFLOW_LOG_LEVEL", "info")
	timeout, err := time.ParseDuration(env.or("ORDERFLOW_CONSISTENCY_TIMEOUT", "3s"))
	if err != nil || timeout <= 0 {
		return fmt.Errorf("ORDERFLOW_CONSISTENCY_TIMEOUT: want a positive duration such as 3s")
	}
	c.ConsistencyTimeout = timeout
	return nil
}

// readGateway reads the gateway's security: token keys, rate limits, subscriptions, CORS,
// introspection.
func (c *Config) readGateway(env environment) error {
	c.JWTSecret, c.JWKSFile = env("ORDERFLOW_JWT_SECRET"), env("ORDERFLOW_JWKS_FILE")
	c.JWTPreviousSecret = env("ORDERFLOW_JWT_PREVIOUS_SECRET")
	var err error
	if c.RateLimit, err = strconv.Atoi(env.or("GATEWAY_RATE_LIMIT", "20")); err != nil || c.RateLimit < 0 {
		return fmt.Errorf("GATEWAY_RATE_LIMIT: want requests per second per client, such as 20 (0: no limit)")
	}
	if c.AdminRateLimit, err = strconv.Atoi(env.or("GATEWAY_ADMIN_RATE_LIMIT", "0")); err != nil || c.AdminRateLimit < 0 {
		return fmt.Errorf("GATEWAY_ADMIN_RATE_LIMIT: want requests per second per admin, such as 200 (0: no limit)")
	}
	if c.MaxSubscriptions, err = strconv.Atoi(env.or("GATEWAY_MAX_SUBSCRIPTIONS", "5000")); err != nil || c.MaxSubscriptions <= 0 {
		return fmt.Errorf("GATEWAY_MAX_SUBSCRIPTIONS: want a positive number of live subscriptions per gateway, such as 5000")
	}
	for _, o := range strings.Split(env.or("GATEWAY_CORS_ORIGINS", map[bool]string{true: "*"}[c.Dev]), ",") {
		if o = strings.TrimSpace(o); o != "" {
			c.CORSOrigins = append(c.CORSOrigins, o)
		}
	}
	if c.Introspection, err = strconv.ParseBool(env.or("GATEWAY_INTROSPECTION", strconv.FormatBool(c.Dev))); err != nil {
		return fmt.Errorf("GATEWAY_INTROSPECTION: want true or false")
	}
	return nil
}

// parseTargets reads --target: all, or names of targets, sorted, each once.
func parseTargets(list string) ([]string, error) {
	var targets []string
	for _, t := range strings.Split(list, ",") {
		t = strings.TrimSpace(t)
		switch {
		case t == "all":
			targets = append(targets, TargetNames()...)
		case slices.Contains(TargetNames(), t):
			targets = append(targets, t)
		default:
			return nil, fmt.Errorf("unknown target %q: want all or any of %s", t, strings.Join(TargetNames(), ", "))
		}
	}
	slices.Sort(targets)
	return slices.Compact(targets), nil
}

// Resolve fills database URLs from DatabaseURL and checks what the targets need.
func (c *Config) Resolve() error {
	if c.EventStoreURL == "" {
		c.EventStoreURL = c.DatabaseURL
	}
	for _, u := range []*string{&c.OrdersDatabaseURL, &c.CatalogDatabaseURL, &c.CustomersDatabaseURL, &c.SagasDatabaseURL} {
		if *u == "" {
			*u = c.DatabaseURL
		}
	}
	if c.NATSURL != "" && c.NATSSeeds == "" && !c.NATSInsecure {
		return errNoCredentials
	}
	needsStore := c.needsEventStore()
	if needsStore && c.EventStoreURL == "" {
		return errors.New("no event store: set EVENTSTORE_URL or DATABASE_URL (postgres://…), or run `orderflow dev`")
	}
	if needsStore && !isESDB(c.EventStoreURL) && !strings.HasPrefix(c.EventStoreURL, "postgres://") && !strings.HasPrefix(c.EventStoreURL, "postgresql://") {
		return fmt.Errorf("EVENTSTORE_URL %s: want esdb://… (EventStoreDB) or postgres://… (PostgreSQL)", Mask(c.EventStoreURL))
	}
	for _, t := range c.selected() {
		for _, db := range t.Databases {
			if c.SchemaURL(db.Schema) == "" {
				return fmt.Errorf("no database for %s: set %s or DATABASE_URL", t.Name, databaseEnv[db.Schema])
			}
		}
	}
	return nil
}

func isESDB(url string) bool {
	return strings.HasPrefix(url, "esdb://") || strings.HasPrefix(url, "esdb+discover://")
}

func (c Config) needsEventStore() bool { return eventStoreConns(c.selected()) > 0 }

func (c Config) runs(target string) bool { return slices.Contains(c.Targets, target) }

// selected are the registry's targets c runs, in the registry's order.
func (c Config) selected() []target.Target {
	var out []target.Target
	for _, t := range Targets(c) {
		if c.runs(t.Name) {
			out = append(out, t)
		}
	}
	return out
}

// databaseEnv names the variable that locates each schema's database (default DATABASE_URL).
var databaseEnv = map[string]string{
	"orders": "ORDERS_DATABASE_URL", "activity": "ORDERS_DATABASE_URL", "catalog": "CATALOG_DATABASE_URL", "customers": "CUSTOMERS_DATABASE_URL", "fulfillment": "SAGAS_DATABASE_URL",
}

// SchemaURL is the database that holds schema.
func (c Config) SchemaURL(schema string) string {
	switch databaseEnv[schema] {
	case "ORDERS_DATABASE_URL":
		return c.OrdersDatabaseURL
	case "CATALOG_DATABASE_URL":
		return c.CatalogDatabaseURL
	case "CUSTOMERS_DATABASE_URL":
		return c.CustomersDatabaseURL
	case "SAGAS_DATABASE_URL":
		return c.SagasDatabaseURL
	}
	return c.DatabaseURL
}

// settings are what the targets read of c.
// security is the gateway's security by c, its verifier made of c's token keys.
func (c Config) security() (gateway.Security, error) {
	v, err := Verifier(c)
	if err != nil {
		return gateway.Security{}, err
	}
	return gateway.Security{Verifier: v, RateLimit: c.RateLimit, AdminRateLimit: c.AdminRateLimit, CORSOrigins: c.CORSOrigins,
		Introspection: c.Introspection, GraphiQL: c.Dev, MaxSubscriptions: c.MaxSubscriptions}, nil
}

// Mask hides a URL's password for printing.
func Mask(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

// cgroupMemoryLimit is the memory the process's cgroup (v2) may use, 0 when none limits it.
func cgroupMemoryLimit() int64 {
	b, err := os.ReadFile("/sys/fs/cgroup/memory.max")
	if err != nil {
		return 0
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64) // "max": no limit
	if err != nil {
		return 0
	}
	return n
}
