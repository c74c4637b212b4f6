package platform

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/orderflow/orderflow/dev/natsrv"
	"github.com/orderflow/orderflow/internal/auth"
	"github.com/orderflow/orderflow/wire"
)

// TestSeedRotation rotates the gateway's seed with no moment at which either key stops working:
// after Rotate, the NATS server (restarted with the new configuration) accepts the old seed and
// the new one, and the services believe assertions signed with either; after Retire, only the new.
func TestSeedRotation(t *testing.T) {
	dir := t.TempDir()
	serve := func() *natsrv.Server {
		t.Helper()
		users, err := MakeIdentities(dir, wire.DefaultNamespace)
		if err != nil {
			t.Fatal(err)
		}
		srv, err := natsrv.Start(natsrv.Options{StoreDir: t.TempDir(), Users: users})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srv.Stop)
		return srv
	}
	connects := func(srv *natsrv.Server, seed string) bool {
		t.Helper()
		opts, err := IdentityOptions("gateway", seed)
		if err != nil {
			t.Fatal(err)
		}
		nc, err := nats.Connect(srv.URL(), append(opts, nats.Timeout(2*time.Second))...)
		if err == nil {
			nc.Close()
		}
		return err == nil
	}
	believed := func(seeds string) bool {
		t.Helper()
		trust, err := Trust(dir)
		if err != nil {
			t.Fatal(err)
		}
		s, err := Signer("gateway", seeds)
		if err != nil {
			t.Fatal(err)
		}
		tok, err := s.Sign(auth.Principal{Subject: "c-1", Role: auth.Customer}, "a", "", time.Minute, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		_, err = trust.Verify(tok, "a", "", time.Now())
		return err == nil
	}

	srv := serve()
	old := t.TempDir() // the seed the running gateway holds, as it was
	seed, err := os.ReadFile(filepath.Join(dir, "gateway.nk"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(old, "gateway.nk"), seed, 0o600); err != nil {
		t.Fatal(err)
	}
	if !connects(srv, filepath.Join(old, "gateway.nk")) || !believed(old) {
		t.Fatal("the gateway's first seed does not work")
	}

	if err := Rotate(dir, "gateway"); err != nil {
		t.Fatal(err)
	}
	if info, err := os.Stat(filepath.Join(dir, "gateway.nk")); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("the new seed: %v %v; want a 0600 file", info, err)
	}
	srv = serve()
	if !connects(srv, filepath.Join(old, "gateway.nk")) || !believed(old) {
		t.Error("during the rotation, the old seed stopped working")
	}
	if !connects(srv, filepath.Join(dir, "gateway.nk")) || !believed(dir) {
		t.Error("during the rotation, the new seed does not work")
	}

	if err := Retire(dir, "gateway"); err != nil {
		t.Fatal(err)
	}
	srv = serve()
	if connects(srv, filepath.Join(old, "gateway.nk")) || believed(old) {
		t.Error("after Retire, the old seed still works")
	}
	if !connects(srv, filepath.Join(dir, "gateway.nk")) || !believed(dir) {
		t.Error("after Retire, the new seed does not work")
	}
	if err := Retire(dir, "gateway"); err == nil || !strings.Contains(err.Error(), "nothing is being rotated") {
		t.Errorf("retire twice: %v", err)
	}
	if err := Rotate(dir, "nobody"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("rotate an unknown identity: %v", err)
	}
}
