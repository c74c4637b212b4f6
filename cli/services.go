package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/orderflow/orderflow/internal/auth"
	"github.com/orderflow/orderflow/internal/rpc"
	"github.com/orderflow/orderflow/platform"
	"github.com/orderflow/orderflow/wire"
)

// cliNATS connects the CLI to the platform's NATS: NATS_URL, else the URL a running `orderflow
// dev` left in its data directory, else the default local server; as the operator identity when
// its seed is at hand (ORDERFLOW_NATS_SEEDS, else the dev data directory's), and then asserting the
// operator as the caller of what it asks (the services check it: see auth.Trust).
func cliNATS(ctx context.Context, getenv func(string) string, name string) (context.Context, *nats.Conn, wire.Namespace, error) {
	dir := cliDataDir(getenv)
	url := getenv("NATS_URL")
	if url == "" {
		url = nats.DefaultURL
		if b, err := os.ReadFile(filepath.Join(dir, platform.NATSURLFile)); err == nil {
			url = strings.TrimSpace(string(b))
		}
	}
	opts := []nats.Option{nats.Name("orderflow " + name), nats.Timeout(3 * time.Second)}
	opts = append(opts, platform.NATSTLSFromEnv(getenv).Options()...)
	seeds := getenv("ORDERFLOW_NATS_SEEDS")
	if seeds == "" {
		seeds = filepath.Join(dir, platform.SeedsDir)
	}
	if seed := filepath.Join(seeds, platform.Operator+".nk"); fileExists(seed) {
		if getenv("ORDERFLOW_NATS_INSECURE") != "true" { // else NATS asks no one who they are
			id, err := platform.IdentityOptions(platform.Operator, seed)
			if err != nil {
				return ctx, nil, "", err
			}
			opts = append(opts, id...)
		}
		signer, err := platform.Signer(platform.Operator, seeds)
		if err != nil {
			return ctx, nil, "", err
		}
		ctx = auth.WithSigner(auth.With(ctx, auth.Principal{Subject: platform.Operator, Role: auth.Admin}), signer)
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return ctx, nil, "", fmt.Errorf("connect to NATS at %s (set NATS_URL, or start the platform with make run): %w", url, err)
	}
	return ctx, nc, wire.Namespace(getenv("ORDERFLOW_NATS_PREFIX")), nil
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// services lists the live instances of every orderflow service, with their endpoints and request
// statistics, from NATS micro discovery ($SRV.INFO and $SRV.STATS).
func services(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("services", flag.ContinueOnError)
	fs.SetOutput(stderr)
	wait := fs.Duration("wait", 500*time.Millisecond, "how long to collect answers")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, nc, ns, err := cliNATS(ctx, getenv, "services")
	if err != nil {
		return err
	}
	defer nc.Close()
	out, err := rpc.Discover(ctx, nc, ns, *wait)
	if err != nil {
		return err
	}
	prefix := ns.Subject("")
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	if len(out) == 0 {
		fmt.Fprintf(stdout, "no orderflow services answer on %s (subjects %s*)\n", nc.ConnectedUrl(), prefix)
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tINSTANCE\tVERSION\tUP\tENDPOINT\tSUBJECT\tREQUESTS\tERRORS\tAVG")
	for _, in := range out {
		for i, e := range in.Endpoints {
			svc, id, ver, up := in.Service, in.ID, in.Version, time.Since(in.Started).Round(time.Second).String()
			if i > 0 {
				svc, id, ver, up = "", "", "", ""
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\n", svc, id, ver, up, e.Name, e.Subject, e.Requests, e.Errors, e.AverageProcessingTime.Round(time.Microsecond))
		}
	}
	return tw.Flush()
}

// cliDataDir is where a `make run` of this checkout keeps its data (ORDERFLOW_DATA_DIR, else
// .orderflow): the CLI finds the platform's database, NATS and identities there.
func cliDataDir(getenv func(string) string) string {
	if dir := getenv("ORDERFLOW_DATA_DIR"); dir != "" {
		return dir
	}
	return ".orderflow"
}
