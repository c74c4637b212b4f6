package platform

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/orderflow/orderflow/dev/natsrv"
	"github.com/orderflow/orderflow/gateway"
	"github.com/orderflow/orderflow/gateway/api"
	"github.com/orderflow/orderflow/internal/auth"
	"github.com/orderflow/orderflow/internal/jobs"
	"github.com/orderflow/orderflow/projections/activity"
	catalogrm "github.com/orderflow/orderflow/projections/catalog"
	customersrm "github.com/orderflow/orderflow/projections/customers"
	orderrm "github.com/orderflow/orderflow/projections/orders"
	"github.com/orderflow/orderflow/sagas/fulfillment"
	"github.com/orderflow/orderflow/wire"
)

// Operator is the identity of the CLI (`orderflow services`, `sagas`): it reads the services'
// figures and the sagas, nothing else.
const Operator = "operator"

// grant is what one identity needs of NATS, in the words of orderflow: the endpoints it serves, the
// read models it follows, what it publishes, the JetStream it uses.
type grant struct {
	serve    []string // endpoint subjects (wildcards allowed) it answers: a service
	follow   []string // read models whose progress it follows
	publish  []string // subjects it sends to (requests, progress notes, routed commands)
	consume  bool     // it carries out queued commands (a durable of its own name on the jobs stream)
	queue    bool     // it queues commands on the jobs stream
	kv       string   // a key-value bucket it keeps
	discover string   // a service whose instances it finds through NATS micro
}

// grants is the permission table: for each identity, exactly what its job needs, derived from the
// endpoints it serves and calls (wire.Routes of its services, the gateway's commands) and the read
// models it runs. Nobody but the saga queues commands; nobody but the gateway and the operator
// calls the public endpoints; only the projector and the saga publish progress; each command
// service consumes only its own queue.
func grants(ns wire.Namespace) map[string]grant {
	var gatewayCalls []string
	for _, c := range api.Commands {
		gatewayCalls = append(gatewayCalls, c.SendsTo())
	}
	// Its reads: the query services, and two admin reads of command services.
	gatewayCalls = append(gatewayCalls, subjects(wire.Routes(wire.ServiceOrderQueries, wire.ServiceCatalogQueries, wire.ServiceCustomerQueries, wire.ServiceSagas, wire.ServiceProjections))...)
	gatewayCalls = append(gatewayCalls, wire.EndpointPaymentProvider.Name, wire.EndpointCustomerErasure.Name)
	var progress []string // the projector's read models
	for _, rm := range ReadModels {
		progress = append(progress, wire.ProgressOf(rm.Name()))
	}
	serves := func(services ...string) []string { return subjects(wire.Routes(services...)) }
	return map[string]grant{
		"order-commands": {serve: serves(wire.ServiceOrderCommands), consume: true,
			publish: []string{wire.EndpointQuoteProducts.Name, wire.EndpointCustomerStanding.Name}},
		"customer-commands": {serve: serves(wire.ServiceCustomerCommands)},
		"inventory-commands": {serve: append(serves(wire.ServiceInventoryCommands), routeStock), consume: true,
			publish: []string{routeStock}, discover: wire.ServiceInventoryCommands},
		"payment-commands": {serve: serves(wire.ServicePaymentCommands), consume: true},
		"projector":        {serve: serves(wire.ServiceProjections), publish: progress},
		"order-queries":    {serve: serves(wire.ServiceOrderQueries), follow: []string{orderrm.Name, activity.Name}},
		"catalog-queries":  {serve: serves(wire.ServiceCatalogQueries), follow: []string{catalogrm.Name}},
		"customer-queries": {serve: serves(wire.ServiceCustomerQueries), follow: []string{customersrm.Name}},
		"fulfillment-saga": {serve: serves(wire.ServiceSagas), follow: []string{fulfillment.Name},
			publish: []string{wire.ProgressOf(fulfillment.Name)}, queue: true},
		"payment-provider": {},
		"gateway": {publish: gatewayCalls, follow: []string{orderrm.Name, catalogrm.Name, customersrm.Name, fulfillment.Name},
			kv: gateway.IdempotencyBucket(ns), discover: "*"},
		Operator: {publish: append(serves(wire.ServiceSagas, wire.ServiceProjections), wire.EndpointPaymentProvider.Name), discover: "*"},
	}
}

// routeStock is where an inventory instance takes the stock commands of the products it owns from
// the other instances: wire.EndpointRouteStock and the instance's id.
const routeStock = wire.EndpointRouteStock + ".*"

// subjects are the routes' subjects, relative to a namespace.
func subjects(routes []wire.Route) []string {
	out := make([]string, len(routes))
	for i, r := range routes {
		out[i] = r.Name
	}
	return out
}

// Permissions turns identity's grant into the subjects it may publish and subscribe to in
// namespace ns, and whether it answers requests.
func Permissions(identity string, ns wire.Namespace) (publish, subscribe []string, respond bool) {
	g, ok := grants(ns)[identity]
	if !ok {
		return nil, nil, false
	}
	subscribe = append(subscribe, inboxPrefix(identity)+".>")
	for _, s := range g.serve {
		subscribe = append(subscribe, ns.Subject(s))
	}
	if len(g.serve) > 0 {
		subscribe = append(subscribe, "$SRV.>") // NATS micro discovery asks every service
		respond = true
	}
	for _, rm := range g.follow {
		subscribe = append(subscribe, ns.Progress(rm))
	}
	for _, s := range g.publish {
		publish = append(publish, ns.Subject(s))
	}
	if g.discover != "" {
		publish = append(publish, "$SRV.PING."+g.discover, "$SRV.INFO."+g.discover, "$SRV.STATS."+g.discover, "$SRV.PING", "$SRV.INFO", "$SRV.STATS")
	}
	if g.consume || g.queue || g.kv != "" {
		publish = append(publish, "$JS.API.INFO")
	}
	if g.consume || g.queue {
		stream := jobs.StreamName(ns)
		publish = append(publish, "$JS.API.STREAM.INFO."+stream, "$JS.API.STREAM.CREATE."+stream, "$JS.API.STREAM.UPDATE."+stream)
	}
	if g.consume {
		stream, durable := jobs.StreamName(ns), identity
		publish = append(publish, "$JS.API.CONSUMER.CREATE."+stream+"."+durable, "$JS.API.CONSUMER.CREATE."+stream+"."+durable+".>",
			"$JS.API.CONSUMER.INFO."+stream+"."+durable, "$JS.API.CONSUMER.MSG.NEXT."+stream+"."+durable, "$JS.ACK."+stream+"."+durable+".>")
	}
	if g.queue {
		publish = append(publish, ns.Subject("jobs.>"))
	}
	if g.kv != "" {
		stream := "KV_" + g.kv
		publish = append(publish, "$JS.API.STREAM.INFO."+stream, "$JS.API.STREAM.CREATE."+stream, "$JS.API.STREAM.UPDATE."+stream,
			"$JS.API.DIRECT.GET."+stream, "$JS.API.DIRECT.GET."+stream+".>", "$JS.API.STREAM.MSG.GET."+stream, "$KV."+g.kv+".>")
	}
	return publish, subscribe, respond
}

// inboxPrefix is where identity's requests get their answers: its own, so that no one else
// reads them.
func inboxPrefix(identity string) string { return "_INBOX_" + strings.ReplaceAll(identity, "-", "_") }

// Identities are the NATS users of a platform: every target and the operator.
func Identities() []string { return append(TargetNames(), Operator) }

// SeedsDir is where `orderflow dev` keeps each identity's nkey seed (0600 files).
const SeedsDir = "nats-seeds"

// MakeIdentities makes (or reuses) an nkey per identity under dir (<identity>.nk, 0600) and
// returns the users a NATS server of namespace ns must accept, with their permissions. An identity
// whose seed is being rotated (Rotate) is accepted with its previous key too, until Retire. It also
// writes dir/CallersFile: the public keys whose caller assertions the services believe.
func MakeIdentities(dir string, ns wire.Namespace) ([]natsrv.User, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	var users []natsrv.User
	keys := map[string][]string{}
	for _, id := range Identities() {
		kp, err := loadOrMakeSeed(filepath.Join(dir, id+".nk"))
		if err != nil {
			return nil, err
		}
		pub, err := kp.PublicKey()
		if err != nil {
			return nil, err
		}
		previous, err := previousKeys(dir, id)
		if err != nil {
			return nil, err
		}
		publish, subscribe, respond := Permissions(id, ns)
		for _, k := range append([]string{pub}, previous...) {
			users = append(users, natsrv.User{Nkey: k, Publish: publish, Subscribe: subscribe, Respond: respond})
			keys[id] = append(keys[id], k)
		}
	}
	callers := map[string][]string{}
	for _, a := range asserters(keys) {
		callers[a.Identity] = a.Keys
	}
	b, err := json.MarshalIndent(callers, "", "  ")
	if err != nil {
		return nil, err
	}
	// Public keys: readable by every target (each mounts it beside its own seed).
	if err := os.WriteFile(filepath.Join(dir, CallersFile), append(b, '\n'), 0o644); err != nil {
		return nil, fmt.Errorf("write %s: %w", CallersFile, err)
	}
	return users, nil
}

// CallersFile, beside the seeds, lists the public keys of the identities that assert callers
// (the gateway, the saga, the operator's CLI), by identity. It holds no secret.
const CallersFile = "callers.json"

// asserters are the identities whose caller assertions services believe (auth.Trust), with
// their keys: the gateway vouches for the customers and admins its tokens name; the saga and the
// operator's CLI only for themselves.
func asserters(keys map[string][]string) []auth.Asserter {
	return []auth.Asserter{
		{Identity: "gateway", Keys: keys["gateway"]},
		{Identity: "fulfillment-saga", Keys: keys["fulfillment-saga"], Subject: fulfillment.Actor, Role: auth.Service},
		{Identity: Operator, Keys: keys[Operator], Subject: Operator, Role: auth.Admin},
	}
}

// Trust reads the keys of the seeds directory's CallersFile: whose assertions the services of a
// platform with NATS identities believe.
func Trust(seeds string) (*auth.Trust, error) {
	b, err := os.ReadFile(filepath.Join(seeds, CallersFile))
	if err != nil {
		return nil, fmt.Errorf("caller keys: %w (make them with `orderflow nats-config --dir %s`)", err, seeds)
	}
	var keys map[string][]string
	if err := json.Unmarshal(b, &keys); err != nil {
		return nil, fmt.Errorf("caller keys %s: %w", filepath.Join(seeds, CallersFile), err)
	}
	return auth.NewTrust(asserters(keys)...)
}

// Signer is the key identity asserts with (its nkey seed in seeds), or nil for an identity that
// asserts no caller.
func Signer(identity, seeds string) (*auth.Signer, error) {
	if !slices.ContainsFunc(asserters(nil), func(a auth.Asserter) bool { return a.Identity == identity }) {
		return nil, nil
	}
	kp, err := loadSeed(filepath.Join(seeds, identity+".nk"))
	if err != nil {
		return nil, fmt.Errorf("signing key of %s: %w", identity, err)
	}
	return auth.NewSigner(identity, kp)
}

// Rotate gives identity a new seed in dir, keeping its previous public key accepted (by the NATS
// server and in CallersFile) until Retire: restart the NATS server with the new configuration,
// then the target with its new seed, then Retire. Neither key stops working in between.
func Rotate(dir, identity string) error {
	path := filepath.Join(dir, identity+".nk")
	kp, err := loadSeed(path)
	if err != nil {
		return fmt.Errorf("rotate %s: %w", identity, err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(dir, identity+previousSuffix), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintln(f, pub); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Remove(path); err != nil {
		return err
	}
	_, err = loadOrMakeSeed(path)
	return err
}

// Retire stops accepting identity's previous keys (see Rotate).
func Retire(dir, identity string) error {
	err := os.Remove(filepath.Join(dir, identity+previousSuffix))
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("retire %s: no previous key (nothing is being rotated)", identity)
	}
	return err
}

// previousSuffix names the file of an identity's previous public keys, during a rotation.
const previousSuffix = ".previous"

func previousKeys(dir, identity string) ([]string, error) {
	b, err := os.ReadFile(filepath.Join(dir, identity+previousSuffix))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var keys []string
	for _, k := range strings.Fields(string(b)) {
		if !nkeys.IsValidPublicUserKey(k) {
			return nil, fmt.Errorf("%s%s: %q is not a public user nkey", identity, previousSuffix, k)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

func loadSeed(path string) (nkeys.KeyPair, error) {
	seed, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return nkeys.FromSeed([]byte(strings.TrimSpace(string(seed))))
}

func loadOrMakeSeed(path string) (nkeys.KeyPair, error) {
	if kp, err := loadSeed(path); err == nil {
		return kp, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("nats seed %s: %w", filepath.Base(path), err)
	}
	kp, err := nkeys.CreateUser()
	if err != nil {
		return nil, err
	}
	seed, err := kp.Seed()
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, append(seed, '\n'), 0o600); err != nil {
		return nil, fmt.Errorf("keep the nats seed of %s: %w", filepath.Base(path), err)
	}
	return kp, nil
}

// IdentityOptions are the connection options of identity with its seed file: nkey authentication
// and its own inbox prefix.
func IdentityOptions(identity, seedFile string) ([]nats.Option, error) {
	opt, err := nats.NkeyOptionFromSeed(seedFile)
	if err != nil {
		return nil, fmt.Errorf("nats identity %s: %w", identity, err)
	}
	return []nats.Option{opt, nats.CustomInboxPrefix(inboxPrefix(identity))}, nil
}

// ServerOptions shape ServerConfig: where JetStream keeps its data, the directory of the server's
// TLS files (empty: no TLS), and the routes to the other nodes of a cluster (empty: one server).
type ServerOptions struct {
	StoreDir, TLSDir string
	Routes           []string
}

// NATSTLS are the files of a NATS connection over TLS (see Config.NATSTLS).
type NATSTLS struct{ CA, Cert, Key string }

// NATSTLSFromEnv is the NATS TLS files ORDERFLOW_NATS_CA, _CERT and _KEY name.
func NATSTLSFromEnv(getenv func(string) string) NATSTLS {
	return NATSTLS{CA: getenv("ORDERFLOW_NATS_CA"), Cert: getenv("ORDERFLOW_NATS_CERT"), Key: getenv("ORDERFLOW_NATS_KEY")}
}

// Options are the connection options of t: the authority to verify the server with, and the
// client certificate to present.
func (t NATSTLS) Options() []nats.Option {
	var opts []nats.Option
	if t.CA != "" {
		opts = append(opts, nats.RootCAs(t.CA))
	}
	if t.Cert != "" {
		opts = append(opts, nats.ClientCert(t.Cert, t.Key))
	}
	return opts
}

var errNoCredentials = errors.New("no NATS credentials: set ORDERFLOW_NATS_SEEDS (a directory with <target>.nk nkey seeds, one per target), or ORDERFLOW_NATS_INSECURE=true to connect without (development only)")

// ServerConfig is a nats-server configuration (JSON, which nats-server reads as its own format)
// that accepts exactly users, each with its permissions, with JetStream in o.StoreDir: what
// `orderflow nats-config` writes for a NATS server of the platform's own. A client that leaves
// two pings unanswered (a frozen process) is disconnected, leaving its queue groups.
//
// With o.TLSDir (a directory in the server's filesystem holding nats.pem, nats-key.pem and ca.pem,
// as `orderflow certs` makes them), clients connect over TLS only and present a certificate the
// authority signed (mutual TLS), on top of their nkeys; with o.Routes too, the cluster's nodes
// connect to each other over mutual TLS with the same certificates.
func ServerConfig(users []natsrv.User, o ServerOptions) ([]byte, error) {
	type allow struct {
		Allow []string `json:"allow"`
	}
	type responses struct {
		Max     int    `json:"max"`
		Expires string `json:"expires"`
	}
	type permissions struct {
		Publish   allow      `json:"publish"`
		Subscribe allow      `json:"subscribe"`
		Responses *responses `json:"allow_responses,omitempty"`
	}
	type user struct {
		Nkey        string      `json:"nkey"`
		Permissions permissions `json:"permissions"`
	}
	type tls struct {
		Cert    string `json:"cert_file"`
		Key     string `json:"key_file"`
		CA      string `json:"ca_file"`
		Verify  bool   `json:"verify"`
		Timeout int    `json:"timeout"`
	}
	type cluster struct {
		Name   string   `json:"name"`
		Port   int      `json:"port"`
		TLS    *tls     `json:"tls,omitempty"`
		Routes []string `json:"routes"`
	}
	conf := struct {
		Port          int               `json:"port"`
		HTTPPort      int               `json:"http_port"`
		PingInterval  string            `json:"ping_interval"`
		PingMax       int               `json:"ping_max"`
		JetStream     map[string]string `json:"jetstream"`
		TLS           *tls              `json:"tls,omitempty"`
		Cluster       *cluster          `json:"cluster,omitempty"`
		Authorization map[string][]user `json:"authorization"`
	}{Port: 4222, HTTPPort: 8222, PingInterval: natsrv.PingInterval.String(), PingMax: natsrv.MaxPingsOut, JetStream: map[string]string{"store_dir": o.StoreDir}, Authorization: map[string][]user{}}
	if o.TLSDir != "" {
		conf.TLS = &tls{Cert: path.Join(o.TLSDir, "nats.pem"), Key: path.Join(o.TLSDir, "nats-key.pem"), CA: path.Join(o.TLSDir, "ca.pem"), Verify: true, Timeout: 5}
	}
	if len(o.Routes) > 0 {
		conf.Cluster = &cluster{Name: "orderflow", Port: 6222, Routes: o.Routes, TLS: conf.TLS}
	}
	for _, u := range users {
		p := permissions{Publish: allow{u.Publish}, Subscribe: allow{u.Subscribe}}
		if p.Publish.Allow == nil {
			p.Publish.Allow = []string{} // nothing: an empty allow list denies every subject
		}
		if u.Respond {
			p.Responses = &responses{Max: 1, Expires: "5m"}
		}
		conf.Authorization["users"] = append(conf.Authorization["users"], user{Nkey: u.Nkey, Permissions: p})
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // nats-server's parser knows no \u escapes: ">" as is
	enc.SetIndent("", "  ")
	err := enc.Encode(conf)
	return b.Bytes(), err
}
