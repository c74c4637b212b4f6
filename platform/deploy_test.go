package platform

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/orderflow/orderflow/internal/ops"
)

// We cannot run Docker or Kubernetes here, so these tests hold the deploy files to what the
// binary really does: targets, flags, environment variables, ports, probes, health checks.

func TestEnvVarsListIsWhatTheBinaryReads(t *testing.T) {
	asked := map[string]bool{}
	if _, err := ParseFlags("serve", nil, func(k string) string { asked[k] = true; return "" }, io.Discard); err != nil {
		t.Fatal(err)
	}
	for _, k := range EnvVars {
		if !asked[k] {
			t.Errorf("EnvVars lists %s, which ParseFlags never reads", k)
		}
	}
	namesAll(t, "../README.md", "`%s`", "README does not name the target %s", TargetNames())
	namesAll(t, "../README.md", "`%s`", "README does not document %s", slices.Sorted(maps.Keys(asked)))
	for k := range asked {
		if !slices.Contains(EnvVars, k) {
			t.Errorf("ParseFlags reads %s, missing from EnvVars", k)
		}
	}
}

// checkTarget parses a container's command line and environment as the binary would.
func checkTarget(t *testing.T, where string, args []string, env map[string]string) Config {
	t.Helper()
	if len(args) == 0 || args[0] != "serve" {
		t.Fatalf("%s: command %q does not start with serve", where, args)
	}
	for k := range env {
		if !slices.Contains(EnvVars, k) {
			t.Errorf("%s: sets %s, which the binary does not read", where, k)
		}
	}
	cfg, err := ParseFlags(args[0], args[1:], func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatalf("%s: %q: %v", where, args, err)
	}
	if err := cfg.Resolve(); err != nil {
		t.Errorf("%s: %v", where, err)
	}
	if len(cfg.Targets) != 1 {
		t.Errorf("%s: runs %v, want one target per container", where, cfg.Targets)
	}
	if cfg.runs("order-commands") || cfg.runs("projector") {
		if !isESDB(cfg.EventStoreURL) {
			t.Errorf("%s: event store %q, want EventStoreDB in production", where, cfg.EventStoreURL)
		}
	}
	return cfg
}

func port(t *testing.T, addr string) string {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	return p
}

func TestComposeFile(t *testing.T) {
	var compose struct {
		Services map[string]struct {
			Image       string
			Command     []string
			Environment map[string]string `yaml:"environment"`
			Ports       []string
			Healthcheck struct{ Test []string }
			DependsOn   map[string]struct{ Condition string } `yaml:"depends_on"`
			Volumes     []string
		}
	}
	readYAML(t, "../deploy/docker-compose.yml", &compose)
	seen := map[string]bool{}
	for name, svc := range compose.Services {
		if !slices.ContainsFunc(svc.Command, func(a string) bool { return strings.HasPrefix(a, "--target=") }) {
			continue
		}
		cfg := checkTarget(t, "compose "+name, svc.Command, svc.Environment)
		seen[cfg.Targets[0]] = true
		if got := strings.Join(svc.Healthcheck.Test, " "); got != "CMD /orderflow health" {
			t.Errorf("compose %s: health check %q, want the binary's own health command", name, got)
		}
		if port(t, cfg.HTTPAddr) != "8080" {
			t.Errorf("compose %s: listens on %s, the health check and ports assume 8080", name, cfg.HTTPAddr)
		}
		// Its own NATS identity, and no one else's: the seed of its target, mounted alone beside the
		// public keys of the callers it believes.
		if cfg.NATSInsecure || cfg.NATSSeeds == "" || !slices.Equal(svc.Volumes[:2], []string{"./nats/" + cfg.Targets[0] + ".nk:" + cfg.NATSSeeds + "/" + cfg.Targets[0] + ".nk:ro",
			"./nats/" + CallersFile + ":" + cfg.NATSSeeds + "/" + CallersFile + ":ro"}) || slices.ContainsFunc(svc.Volumes[2:], func(v string) bool { return !strings.HasPrefix(v, "./tls/") }) {
			t.Errorf("compose %s: NATS seeds %q (insecure %v), volumes %v; want its own seed and %s only, and TLS files", name, cfg.NATSSeeds, cfg.NATSInsecure, svc.Volumes, CallersFile)
		}
		checkTLS(t, "compose "+name, cfg, func(path string) bool {
			return slices.ContainsFunc(svc.Volumes, func(v string) bool { return strings.HasSuffix(v, ":"+path+":ro") })
		})
		if u := cfg.Traces.Endpoint; !strings.HasPrefix(u, "http://otel-collector:") || !strings.HasPrefix(compose.Services["otel-collector"].Image, "otel/opentelemetry-collector") {
			t.Errorf("compose %s: exports traces to %q, want the compose file's OpenTelemetry Collector", name, u)
		}
		if u := cfg.Logs.Endpoint; !strings.HasPrefix(u, "http://otel-collector:") {
			t.Errorf("compose %s: exports logs to %q, want the compose file's OpenTelemetry Collector", name, u)
		}
		if u := cfg.Metrics.Endpoint; !strings.HasPrefix(u, "http://otel-collector:") || cfg.MetricInterval != 10*time.Second {
			t.Errorf("compose %s: exports metrics to %q every %v, want the compose file's OpenTelemetry Collector every 10 s (Prometheus's scrape)", name, u, cfg.MetricInterval)
		}
		for dep, c := range svc.DependsOn {
			if _, ok := compose.Services[dep]; !ok || c.Condition != "service_healthy" {
				t.Errorf("compose %s: depends on %s (%s), want an existing service, healthy", name, dep, c.Condition)
			}
		}
	}
	for _, target := range TargetNames() {
		if !seen[target] {
			t.Errorf("compose runs no %s container", target)
		}
	}
	if got := strings.Join(compose.Services["nats"].Command, " "); got != "-c /etc/nats/nats-server.conf" {
		t.Errorf("compose nats: %q, want the server config `orderflow nats-config` writes", got)
	}
	for _, infra := range []string{"eventstore", "postgres", "nats"} {
		if len(compose.Services[infra].Healthcheck.Test) == 0 {
			t.Errorf("compose service %s has no health check", infra)
		}
	}
}

func TestKubernetesBase(t *testing.T) {
	dir := "../deploy/k8s/base"
	var kust struct {
		Resources       []string
		SecretGenerator []struct {
			Name  string
			Files []string
		} `yaml:"secretGenerator"`
	}
	readYAML(t, filepath.Join(dir, "kustomization.yaml"), &kust)
	seedSecrets := map[string][]string{}
	for _, g := range kust.SecretGenerator {
		seedSecrets[g.Name] = g.Files
	}
	var config map[string]string
	seen := map[string]bool{}
	probes := ops.Handler(func(context.Context) error { return nil }, nil)
	for _, file := range kust.Resources {
		for _, doc := range readDocs(t, filepath.Join(dir, file)) {
			kind, _ := doc["kind"].(string)
			switch kind {
			case "ConfigMap":
				config = map[string]string{}
				for k, v := range doc["data"].(map[string]any) {
					config[k] = v.(string)
				}
			case "Deployment":
				var d deployment
				remarshal(t, doc, &d)
				if config == nil {
					t.Fatalf("%s: the ConfigMap must come first in kustomization.yaml", file)
				}
				c := d.Spec.Template.Spec.Containers[0]
				if !strings.HasPrefix(c.Image, "orderflow") {
					t.Errorf("k8s %s: %s in the base, which holds the platform only (backends go in overlays)", file, c.Image)
					continue
				}
				env := map[string]string{}
				for k, v := range config {
					env[k] = v
				}
				for _, from := range c.EnvFrom {
					if from.SecretRef.Name != "" {
						for _, k := range []string{"ORDERS_DATABASE_URL", "CATALOG_DATABASE_URL", "CUSTOMERS_DATABASE_URL", "SAGAS_DATABASE_URL"} {
							env[k] = "postgres://from-secret/db" // the Secret holds them
						}
					}
				}
				for _, e := range c.Env {
					env[e.Name] = e.Value
				}
				cfg := checkTarget(t, "k8s "+file, c.Args, env)
				seen[cfg.Targets[0]] = true
				// Its own NATS identity only: the Secret of its seed, mounted where it looks.
				vols := d.Spec.Template.Spec.Volumes
				if cfg.NATSInsecure || cfg.NATSSeeds == "" || len(vols) != 2 || vols[0].Secret.SecretName != "nats-seed-"+cfg.Targets[0] || vols[1].Secret.SecretName != "orderflow-tls" ||
					len(c.VolumeMounts) != 2 || c.VolumeMounts[0].MountPath != cfg.NATSSeeds ||
					!slices.Equal(seedSecrets["nats-seed-"+cfg.Targets[0]], []string{"nats/" + cfg.Targets[0] + ".nk", "nats/" + CallersFile}) {
					t.Errorf("k8s %s: NATS seeds %q (insecure %v), volumes %+v, mounts %+v; want its own seed's Secret (its seed and %s) only", file, cfg.NATSSeeds, cfg.NATSInsecure, vols, c.VolumeMounts, CallersFile)
				}
				// The files cert-manager's Secret holds, where the pod mounts it.
				checkTLS(t, "k8s "+file, cfg, func(path string) bool {
					return slices.Contains([]string{"ca.crt", "tls.crt", "tls.key"}, filepath.Base(path)) && filepath.Dir(path) == c.VolumeMounts[1].MountPath
				})
				if len(c.Ports) == 0 || port(t, cfg.HTTPAddr) != itoa(c.Ports[0].ContainerPort) {
					t.Errorf("k8s %s: container port %v, the binary listens on %s", file, c.Ports, cfg.HTTPAddr)
				}
				for name, p := range map[string]probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
					rec := httptest.NewRecorder()
					probes.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, p.HTTPGet.Path, nil))
					if rec.Code != http.StatusOK {
						t.Errorf("k8s %s: %s probe %s answers %d", file, name, p.HTTPGet.Path, rec.Code)
					}
				}
				if c.Resources.Requests["cpu"] == "" || c.Resources.Requests["memory"] == "" {
					t.Errorf("k8s %s: no resource requests", file)
				}
			}
		}
	}
	for _, target := range TargetNames() {
		if !seen[target] {
			t.Errorf("kubernetes base has no %s Deployment", target)
		}
	}
	if e := config["OTEL_EXPORTER_OTLP_ENDPOINT"]; e != "" {
		t.Errorf("kubernetes base: exports traces to %s, which the base does not run", e)
	}
}

// TestKubernetesObservabilityOverlay: the overlay adds a collector (the compose file's
// configuration), a trace backend, a logs backend, Prometheus and Grafana with all three and the
// dashboard (the compose file's configurations), with probes and resources, and points every
// target's export at the collector.
func TestKubernetesObservabilityOverlay(t *testing.T) {
	dir := "../deploy/k8s/overlays/observability"
	var kust struct {
		Resources []string
		Patches   []struct{ Path string }
	}
	readYAML(t, filepath.Join(dir, "kustomization.yaml"), &kust)
	if !slices.Contains(kust.Resources, "../../base") {
		t.Fatalf("overlay resources %v: want the base", kust.Resources)
	}
	otlpPort := ""
	services, configs := map[string]bool{}, map[string]bool{}
	for _, file := range kust.Resources[1:] {
		for _, doc := range readDocs(t, filepath.Join(dir, file)) {
			switch doc["kind"] {
			case "ConfigMap": // the collector's, Prometheus's and Grafana's configurations are the compose file's
				var cm struct {
					Metadata struct{ Name string }
					Data     map[string]string
				}
				remarshal(t, doc, &cm)
				for key := range cm.Data {
					path, ok := overlayFiles[cm.Metadata.Name+"/"+key]
					if !ok {
						continue
					}
					if want, _ := os.ReadFile(path); cm.Data[key] != string(want) {
						t.Errorf("overlay %s: %s of %s is not %s: copy it", file, key, cm.Metadata.Name, path)
					}
					configs[cm.Metadata.Name+"/"+key] = true
				}
			case "Deployment":
				var d deployment
				remarshal(t, doc, &d)
				c := d.Spec.Template.Spec.Containers[0]
				if c.LivenessProbe.HTTPGet.Path == "" || c.ReadinessProbe.HTTPGet.Path == "" {
					t.Errorf("overlay %s: %s has no liveness or readiness probe", file, c.Image)
				}
				if c.Resources.Requests["cpu"] == "" || c.Resources.Requests["memory"] == "" || c.Resources.Limits["memory"] == "" {
					t.Errorf("overlay %s: %s without resource requests and a memory limit: %+v", file, c.Image, c.Resources)
				}
			case "Service":
				var svc struct {
					Metadata struct{ Name string }
					Spec     struct {
						Ports []struct {
							Name string
							Port int
						}
					}
				}
				remarshal(t, doc, &svc)
				services[svc.Metadata.Name] = true
				for _, p := range svc.Spec.Ports {
					if p.Name == "otlp-http" {
						otlpPort = "http://" + svc.Metadata.Name + ":" + itoa(p.Port)
					}
				}
			}
		}
	}
	var config map[string]string
	for _, p := range kust.Patches {
		for _, doc := range readDocs(t, filepath.Join(dir, p.Path)) {
			if doc["kind"] == "ConfigMap" {
				remarshal(t, doc["data"], &config)
			}
		}
	}
	if otlpPort != "http://otel-collector:4318" || config["OTEL_EXPORTER_OTLP_ENDPOINT"] != otlpPort {
		t.Errorf("overlay: targets export to %q, the overlay's OTLP service is %q; want its collector", config["OTEL_EXPORTER_OTLP_ENDPOINT"], otlpPort)
	}
	for key := range overlayFiles {
		if !configs[key] {
			t.Errorf("overlay: no %s (want %s's)", key, overlayFiles[key])
		}
	}
	for _, backend := range []string{"jaeger", "loki", "prometheus", "grafana"} { // where the collector's pipelines go, and where to look
		if !services[backend] {
			t.Errorf("overlay: no %s service for the collector to send to", backend)
		}
	}
}

// overlayFiles are the observability overlay's configurations (ConfigMap/key) that are the
// compose file's, by the file each copies.
var overlayFiles = map[string]string{
	"otel-collector/config.yaml":                "../deploy/otel-collector.yaml",
	"prometheus/prometheus.yml":                 "../deploy/prometheus.yml",
	"grafana-datasources/logs-and-traces.yml":   "../deploy/grafana/provisioning/datasources/logs-and-traces.yml",
	"grafana-datasources/prometheus.yml":        "../deploy/grafana/provisioning/datasources/prometheus.yml",
	"grafana-dashboard-providers/orderflow.yml": "../deploy/grafana/provisioning/dashboards/orderflow.yml",
	"grafana-dashboards/orderflow.json":         "../deploy/grafana/dashboards/orderflow.json",
}

type probe struct {
	HTTPGet struct{ Path string } `yaml:"httpGet"`
}

type deployment struct {
	Spec struct {
		Template struct {
			Spec struct {
				Containers []struct {
					Image   string
					Args    []string
					EnvFrom []struct {
						SecretRef struct{ Name string } `yaml:"secretRef"`
					} `yaml:"envFrom"`
					Env   []struct{ Name, Value string }
					Ports []struct {
						ContainerPort int `yaml:"containerPort"`
					}
					LivenessProbe  probe `yaml:"livenessProbe"`
					ReadinessProbe probe `yaml:"readinessProbe"`
					Resources      struct{ Requests, Limits map[string]string }
					VolumeMounts   []struct {
						Name      string
						MountPath string `yaml:"mountPath"`
					} `yaml:"volumeMounts"`
				}
				Volumes []struct {
					Name   string
					Secret struct {
						SecretName string `yaml:"secretName"`
					}
				}
			}
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// readYAML decodes the YAML file at path into v.
func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	decodeYAML(t, path, data, err, v)
}

func readDocs(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var docs []map[string]any
	dec := yaml.NewDecoder(f)
	for {
		var d map[string]any
		if err := dec.Decode(&d); err == io.EOF {
			return docs
		} else if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		docs = append(docs, d)
	}
}

// remarshal decodes in, as YAML, into out.
func remarshal(t *testing.T, in any, out any) {
	t.Helper()
	data, err := yaml.Marshal(in)
	decodeYAML(t, "a remarshalled document", data, err, out)
}

// decodeYAML decodes data, what was read with err, into v.
func decodeYAML(t *testing.T, what string, data []byte, err error, v any) {
	t.Helper()
	if err == nil {
		err = yaml.Unmarshal(data, v)
	}
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// TestConnectionsAreBounded: every target run as its own process, and all of them in one, hold
// fewer connections than PostgreSQL's default max_connections (100). (The projectors' and the
// saga's claims on their partitions are rows renewed through their pools: no connection of their
// own.)
func TestConnectionsAreBounded(t *testing.T) {
	t.Parallel()
	holds := func(cfg Config) int32 {
		selected := cfg.selected()
		n := eventStoreConns(selected)
		for _, db := range databaseConns(selected) {
			n += db.Conns
		}
		return n
	}
	var apart int32
	for _, target := range TargetNames() {
		apart += holds(Config{Targets: []string{target}})
	}
	together := holds(Config{Targets: TargetNames()})
	if apart >= 90 || together >= 90 {
		t.Errorf("every target apart holds up to %d connections, all in one process %d: keep both under 90 of PostgreSQL's 100", apart, together)
	}
	t.Logf("connections: %d with every target apart, %d in one process", apart, together)
}

// TestDashboardAndScrapesFollowTheBinary: the Grafana dashboard asks only for metrics the binary
// exports, Prometheus scrapes every target of the compose file, and the compose file provisions both.
func TestDashboardAndScrapesFollowTheBinary(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("../deploy/grafana/dashboards/orderflow.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatal(err)
	}
	var source strings.Builder
	for _, dir := range []string{"../internal/telemetry", "../projections", "../sagas/fulfillment", "../commands/payment", "."} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
		for _, f := range files {
			b, _ := os.ReadFile(f)
			source.Write(b)
		}
	}
	metric := regexp.MustCompile(`orderflow_[a-z_]+`)
	asked := 0
	for _, p := range dash.Panels {
		for _, target := range p.Targets {
			for _, name := range metric.FindAllString(target.Expr, -1) {
				asked++
				base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_count"), "_sum")
				if !strings.Contains(source.String(), `"`+base+`"`) {
					t.Errorf("panel %q asks for %s, which the binary does not export", p.Title, name)
				}
			}
		}
	}
	if asked < 10 {
		t.Errorf("the dashboard asks for %d metrics", asked)
	}
	// Prometheus scrapes the collector the targets push to (TestLogsAndTracesMeetInGrafana checks
	// its metrics pipeline), keeping each series' target and instance.
	var prom struct {
		ScrapeConfigs []struct {
			HonorLabels   bool                         `yaml:"honor_labels"`
			StaticConfigs []struct{ Targets []string } `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	readYAML(t, "../deploy/prometheus.yml", &prom)
	if len(prom.ScrapeConfigs) != 1 || !prom.ScrapeConfigs[0].HonorLabels || len(prom.ScrapeConfigs[0].StaticConfigs) != 1 ||
		!slices.Equal(prom.ScrapeConfigs[0].StaticConfigs[0].Targets, []string{"otel-collector:8889"}) {
		t.Errorf("prometheus.yml: %+v, want the collector's exporter (otel-collector:8889), its labels honoured", prom)
	}
	compose, _ := os.ReadFile("../deploy/docker-compose.yml")
	for _, want := range []string{"./prometheus.yml:/etc/prometheus/prometheus.yml", "./grafana/dashboards:/var/lib/grafana/dashboards"} {
		if !strings.Contains(string(compose), want) {
			t.Errorf("docker-compose.yml does not mount %s", want)
		}
	}
}

// checkTLS checks that a target of a deployment reaches NATS, PostgreSQL and EventStoreDB over
// TLS, verifying the servers' certificates against files it has (mounted, by mounted).
func checkTLS(t *testing.T, where string, cfg Config, mounted func(path string) bool) {
	t.Helper()
	if !strings.HasPrefix(cfg.NATSURL, "tls://") || cfg.NATSTLS.CA == "" || cfg.NATSTLS.Cert == "" || cfg.NATSTLS.Key == "" {
		t.Errorf("%s: NATS %s with %+v; want tls:// with an authority and a client certificate", where, Mask(cfg.NATSURL), cfg.NATSTLS)
	}
	for _, f := range []string{cfg.NATSTLS.CA, cfg.NATSTLS.Cert, cfg.NATSTLS.Key} {
		if f != "" && !mounted(f) {
			t.Errorf("%s: %s is not mounted", where, f)
		}
	}
	dbs := []string{cfg.OrdersDatabaseURL, cfg.CatalogDatabaseURL, cfg.CustomersDatabaseURL, cfg.SagasDatabaseURL}
	if !isESDB(cfg.EventStoreURL) {
		dbs = append(dbs, cfg.EventStoreURL) // a PostgreSQL event store
	}
	for _, db := range dbs {
		if db == "" {
			continue // a target without a database
		}
		u, err := url.Parse(db)
		if err != nil || (u.Host != "from-secret" && (u.Query().Get("sslmode") != "verify-full" || !mounted(u.Query().Get("sslrootcert")))) {
			t.Errorf("%s: database %s; want sslmode=verify-full with a mounted sslrootcert", where, Mask(db))
		}
	}
	if u, err := url.Parse(cfg.EventStoreURL); isESDB(cfg.EventStoreURL) && (err != nil || u.Query().Get("tls") != "true" || !mounted(u.Query().Get("tlsCAFile"))) {
		t.Errorf("%s: EventStoreDB %s; want tls=true with a mounted tlsCAFile", where, Mask(cfg.EventStoreURL))
	}
}

// namesAll fails t with complaint for each of names the file at path does not hold as format says.
func namesAll(t *testing.T, path, format, complaint string, names []string) {
	t.Helper()
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		if !strings.Contains(string(text), fmt.Sprintf(format, name)) {
			t.Errorf(complaint, name)
		}
	}
}

// TestLogsAndTracesMeetInGrafana: the compose file's collector sends traces to its Jaeger, logs
// to its Loki and serves metrics to its Prometheus; Grafana has both, a log line's trace id opens its trace and a span its logs; the
// dashboard has a panel of errors by target from the logs.
func TestLogsAndTracesMeetInGrafana(t *testing.T) {
	t.Parallel()
	var collector struct {
		Exporters map[string]struct{ Endpoint string }
		Service   struct {
			Pipelines map[string]struct{ Receivers, Exporters []string }
		}
	}
	readYAML(t, "../deploy/otel-collector.yaml", &collector)
	for pipeline, want := range map[string]string{"traces": "jaeger:4317", "logs": "http://loki:3100/otlp", "metrics": "0.0.0.0:8889"} {
		p := collector.Service.Pipelines[pipeline]
		if !slices.Contains(p.Receivers, "otlp") || len(p.Exporters) != 1 || collector.Exporters[p.Exporters[0]].Endpoint != want {
			t.Errorf("collector pipeline %s: %+v (exporters %+v), want OTLP in and %s out", pipeline, p, collector.Exporters, want)
		}
	}
	compose, _ := os.ReadFile("../deploy/docker-compose.yml")
	for _, want := range []string{"./otel-collector.yaml:/etc/otelcol/config.yaml", "image: grafana/loki:", "image: jaegertracing/"} {
		if !strings.Contains(string(compose), want) {
			t.Errorf("docker-compose.yml has no %s", want)
		}
	}
	var sources struct {
		Datasources []struct {
			UID      string
			Type     string
			JSONData struct {
				DerivedFields []struct {
					MatcherRegex  string `yaml:"matcherRegex"`
					DatasourceUID string `yaml:"datasourceUid"`
				} `yaml:"derivedFields"`
				TracesToLogs struct {
					DatasourceUID   string `yaml:"datasourceUid"`
					FilterByTraceID bool   `yaml:"filterByTraceID"`
				} `yaml:"tracesToLogsV2"`
			} `yaml:"jsonData"`
		}
	}
	readYAML(t, "../deploy/grafana/provisioning/datasources/logs-and-traces.yml", &sources)
	byUID := map[string]int{}
	for i, s := range sources.Datasources {
		byUID[s.UID] = i
	}
	loki, jaeger := sources.Datasources[byUID["loki"]], sources.Datasources[byUID["jaeger"]]
	if loki.Type != "loki" || len(loki.JSONData.DerivedFields) != 1 || loki.JSONData.DerivedFields[0].MatcherRegex != "trace_id" || loki.JSONData.DerivedFields[0].DatasourceUID != "jaeger" {
		t.Errorf("Loki data source %+v: want its trace_id to open the trace in Jaeger", loki)
	}
	if jaeger.Type != "jaeger" || jaeger.JSONData.TracesToLogs.DatasourceUID != "loki" || !jaeger.JSONData.TracesToLogs.FilterByTraceID {
		t.Errorf("Jaeger data source %+v: want a span to open its logs in Loki", jaeger)
	}
	dashboard, _ := os.ReadFile("../deploy/grafana/dashboards/orderflow.json")
	if !strings.Contains(string(dashboard), `"title": "Logs: errors by target"`) || !strings.Contains(string(dashboard), `"uid": "loki"`) {
		t.Error("the dashboard has no panel of errors by target from the logs")
	}
}
