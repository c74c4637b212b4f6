// Package natsrv runs an embedded NATS server with JetStream (nats-server as a library) for
// `orderflow dev` and for tests on a machine without NATS_URL.
package natsrv

import (
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// PingInterval and MaxPingsOut: the server disconnects a client that leaves MaxPingsOut of its
// pings, one every PingInterval, unanswered (nats-server's ping_interval and ping_max).
const (
	PingInterval = 2 * time.Second
	MaxPingsOut  = 2
)

// Options configure Start.
type Options struct {
	// StoreDir keeps JetStream's data; required.
	StoreDir string
	// Port to listen on at 127.0.0.1; 0 picks a free one.
	Port int
	// Users, when any, are the only clients the server accepts (nkey authentication), each with
	// its permissions; none: anyone may connect and do anything (tests of other concerns).
	Users []User
}

// User is one identity: its nkey's public key and what it may do.
type User struct {
	Nkey string
	// Publish and Subscribe are the subjects (wildcards allowed) it may publish and subscribe to.
	Publish, Subscribe []string
	// Respond lets it answer the requests it receives (one reply each), whatever their reply
	// subject: a service.
	Respond bool
}

// Server is a running embedded NATS server.
type Server struct{ ns *server.Server }

// Start starts the server and waits until it accepts connections.
func Start(opts Options) (*Server, error) {
	if opts.StoreDir == "" {
		return nil, errors.New("embedded nats: StoreDir is required")
	}
	port := opts.Port
	if port == 0 {
		port = server.RANDOM_PORT
	}
	sopts := &server.Options{
		Host:      "127.0.0.1",
		Port:      port,
		JetStream: true,
		StoreDir:  opts.StoreDir,
		NoSigs:    true,
		NoLog:     true,
		// A client that stops answering the server's pings (a frozen process) is disconnected
		// after a few seconds, leaving its queue groups: requests go to the other instances.
		PingInterval: PingInterval,
		MaxPingsOut:  MaxPingsOut,
	}
	for _, u := range opts.Users {
		perms := &server.Permissions{Publish: &server.SubjectPermission{Allow: u.Publish}, Subscribe: &server.SubjectPermission{Allow: u.Subscribe}}
		if u.Respond {
			perms.Response = &server.ResponsePermission{MaxMsgs: 1, Expires: 5 * time.Minute}
		}
		sopts.Nkeys = append(sopts.Nkeys, &server.NkeyUser{Nkey: u.Nkey, Permissions: perms})
	}
	ns, err := server.NewServer(sopts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, errors.New("embedded nats: not ready within 10s")
	}
	return &Server{ns: ns}, nil
}

// URL is the client URL of the server.
func (s *Server) URL() string { return s.ns.ClientURL() }

// InProcess connects a client of this process to the server without a socket (nats.Connect
// with this option and any URL): no system call per message.
func (s *Server) InProcess() nats.Option { return nats.InProcessServer(s.ns) }

// Stop shuts the server down and waits for it.
func (s *Server) Stop() {
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
}
