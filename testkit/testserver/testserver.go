// Package testserver shares one server among the tests of a test binary: the one an environment
// variable names, or else one the binary starts on first use (and stops when its tests end).
package testserver

import (
	"os"
	"sync"
	"sync/atomic"
	"testing"
)

// Shared is a server the tests of one binary share.
type Shared struct {
	// Env is the environment variable whose URL, when set, is used instead of starting a server.
	Env string
	// Needs names the server in messages: "NATS", "PostgreSQL".
	Needs string
	// Start starts the server and answers its URL; it is called at most once.
	Start func() (string, error)

	once  sync.Once
	url   string
	err   error
	ready atomic.Bool // url is set: Known may read it from any goroutine
}

// URL returns the server's URL, starting the server on first use. It skips the test under -short,
// and fails it if the server could not be started.
func (s *Shared) URL(tb testing.TB) string {
	tb.Helper()
	if testing.Short() {
		tb.Skip("needs " + s.Needs + "; skipped with -short")
	}
	s.once.Do(func() {
		if s.url = os.Getenv(s.Env); s.url == "" {
			s.url, s.err = s.Start()
		}
		s.ready.Store(true)
	})
	if s.err != nil {
		tb.Fatalf("start test %s: %v", s.Needs, s.err)
	}
	return s.url
}

// Known is the URL URL answered, "" before a test asked for one.
func (s *Shared) Known() string {
	if !s.ready.Load() {
		return ""
	}
	return s.url
}
