// Package cli is orderflow's command line: `orderflow dev`, `serve`, and the operators' commands
// (services, sagas, projections, trace, nats-config, certs, token, health). cmd/orderflow runs it.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/orderflow/orderflow/platform"
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
  orderflow nats-config --dir DIR [--tls D] [--rotate|--retire ID]
                                                        NATS identities (nkey seeds), the callers' keys, a server config with their permissions
  orderflow certs --dir DIR [--servers N=H1,H2;…]       a local certificate authority and TLS certificates (NATS, PostgreSQL, EventStoreDB)
  orderflow trace ORDER_ID                              an order's life from the event log: every command, who asked, its events
  orderflow token --sub ID [--role customer|admin]      a development bearer token for the gateway

Environment: DATABASE_URL, EVENTSTORE_URL, ORDERS_DATABASE_URL, CATALOG_DATABASE_URL,
CUSTOMERS_DATABASE_URL, NATS_URL, ORDERFLOW_NATS_SEEDS, ORDERFLOW_NATS_CA, ORDERFLOW_NATS_CERT,
ORDERFLOW_NATS_KEY, ORDERFLOW_HTTP_ADDR,
ORDERFLOW_DATA_DIR, ORDERFLOW_LOG_FORMAT (text|json), ORDERFLOW_LOG_LEVEL,
ORDERFLOW_CONSISTENCY_TIMEOUT, ORDERFLOW_NATS_PREFIX, ORDERFLOW_JWT_SECRET, ORDERFLOW_JWKS_FILE,
GATEWAY_RATE_LIMIT, GATEWAY_ADMIN_RATE_LIMIT, GATEWAY_CORS_ORIGINS, GATEWAY_INTROSPECTION,
GATEWAY_MAX_SUBSCRIPTIONS. See README.md.
`

// Main runs the command line args; it returns when the command is done or ctx ends.
func Main(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintf(stderr, usage, strings.Join(platform.TargetNames(), ", "))
		return errors.New("no command given")
	}
	switch args[0] {
	case "dev", "serve":
		cfg, err := platform.ParseFlags(args[0], args[1:], getenv, stderr)
		if err != nil {
			return err
		}
		return platform.Run(ctx, cfg, stdout, stderr, nil)
	case "projections":
		return projectionsCmd(ctx, args[1:], getenv, stdout, stderr)
	case "sagas":
		return sagasCmd(ctx, args[1:], getenv, stdout, stderr)
	case "services":
		return services(ctx, args[1:], getenv, stdout, stderr)
	case "health":
		return health(ctx, args[1:], getenv, stdout, stderr)
	case "nats-config":
		return natsConfigCmd(args[1:], getenv, stdout, stderr)
	case "certs":
		return certsCmd(args[1:], stdout, stderr)
	case "trace":
		return traceCmd(ctx, args[1:], getenv, stdout)
	case "token":
		return tokenCmd(args[1:], getenv, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprintf(stdout, usage, strings.Join(platform.TargetNames(), ", "))
		return nil
	}
	fmt.Fprintf(stderr, usage, strings.Join(platform.TargetNames(), ", "))
	return fmt.Errorf("unknown command %q", args[0])
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
