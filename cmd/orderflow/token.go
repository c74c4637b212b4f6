package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/orderflow/orderflow/internal/auth"
)

// jwtSecretFile is where `orderflow dev` keeps the secret of its tokens, so that `orderflow
// token` run from the same checkout issues tokens that platform accepts, across restarts.
const jwtSecretFile = "jwt.secret"

// jwtSecret is ORDERFLOW_JWT_SECRET, else (create) the dev secret in dataDir.
func jwtSecret(cfg Config, create bool) ([]byte, error) {
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

// verifier is how the gateway checks tokens: the JWKS file's keys, else the HS256 secret (dev
// makes one).
func verifier(cfg Config) (*auth.Verifier, error) {
	switch {
	case cfg.JWKSFile != "":
		return auth.JWKSFile(cfg.JWKSFile)
	case cfg.JWTSecret != "" || cfg.Dev:
		secret, err := jwtSecret(cfg, cfg.Dev)
		if err != nil {
			return nil, err
		}
		return auth.HS256(secret)
	}
	return nil, errors.New("the gateway needs ORDERFLOW_JWT_SECRET (HS256, at least 32 bytes) or ORDERFLOW_JWKS_FILE (RS256)")
}

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
	cfg, err := ParseFlags("serve", nil, getenv, io.Discard)
	if err != nil {
		return err
	}
	if cfg.JWKSFile != "" && cfg.JWTSecret == "" {
		return errors.New("token: the gateway verifies RS256 tokens of ORDERFLOW_JWKS_FILE; get tokens from your identity provider")
	}
	secret, err := jwtSecret(cfg, false)
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
