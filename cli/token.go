package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/orderflow/orderflow/internal/auth"
	"github.com/orderflow/orderflow/platform"
)

// tokenCmd is `orderflow token --sub ID --role customer|admin [--ttl 24h]`: a development token
// signed with this checkout's `make run` secret (or ORDERFLOW_JWT_SECRET), printed alone on stdout.
func tokenCmd(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sub := fs.String("sub", "", "subject: a customer's id for the customer role")
	role := fs.String("role", string(auth.Customer), "customer or admin")
	ttl := fs.Duration("ttl", 24*time.Hour, "validity")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *sub == "" {
		return errors.New("token: --sub is required (a customer's id, or an admin's name)")
	}
	cfg, err := platform.ParseFlags("serve", nil, getenv, io.Discard)
	if err != nil {
		return err
	}
	if cfg.JWKSFile != "" && cfg.JWTSecret == "" {
		return errors.New("token: the gateway verifies RS256 tokens of ORDERFLOW_JWKS_FILE; get tokens from your identity provider")
	}
	secret, err := platform.JWTSecret(cfg, false)
	if err != nil {
		return fmt.Errorf("token: %w", err)
	}
	tok, err := auth.Issue(secret, *sub, auth.Role(*role), *ttl)
	if err != nil {
		return fmt.Errorf("token: %w", err)
	}
	fmt.Fprintln(stdout, tok)
	return nil
}
