package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/google/pprof/profile"
	"github.com/jackc/pgx/v5"

	"github.com/orderflow/orderflow/internal/auth"
	"github.com/orderflow/orderflow/platform"
)

// Platform is the hidden `orderflow-bench platform`: the platform as `make run` runs it
// (`orderflow dev`: every target, embedded NATS with its identities, the dev defaults), on the
// database DATABASE_URL names, in a process of its own apart from the load that measures it.
//
// With "serve" first, it is `orderflow serve` with the arguments that follow: a worker that
// `orderflow-bench workers` adds to a platform.
func Platform(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	mode := "dev"
	if len(args) > 0 && args[0] == "serve" {
		mode, args = "serve", args[1:]
	}
	cfg, err := platform.ParseFlags(mode, args, getenv, stderr)
	if err != nil {
		return err
	}
	return platform.Run(ctx, cfg, io.Discard, stderr, nil)
}

// childPlatform is a platform in a process of its own (runPlatform), and what measures what it
// costs: its CPU, its PostgreSQL's, its allocations, and a CPU profile by target.
type childPlatform struct {
	benchPlatform
	cmd    *exec.Cmd
	exited chan struct{}
	debug  string // its ORDERFLOW_DEBUG_ADDR
	pg     pgServer
	db     string // its database's name
}

// startChildPlatform starts a platform process on a fresh database of server, its log in dir: the
// `platform` command of the orderflow-bench binary bin ("": this one).
func startChildPlatform(ctx context.Context, name string, server pgServer, extraEnv map[string]string, bin string, stdout io.Writer) (_ *childPlatform, err error) {
	p := &childPlatform{pg: server, exited: make(chan struct{})}
	var cleanup []func()
	p.stop = func() {
		for i := len(cleanup) - 1; i >= 0; i-- {
			cleanup[i]()
		}
	}
	defer func() {
		if err != nil {
			p.stop()
		}
	}()
	dir, err := os.MkdirTemp("", "orderflow-bench-"+name+"-")
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	cleanup = append(cleanup, func() { os.RemoveAll(dir) })
	p.db = "bench_" + name + "_" + fmt.Sprint(time.Now().UnixNano())
	if err := server.exec(ctx, "create database "+p.db); err != nil {
		return nil, err
	}
	cleanup = append(cleanup, func() { _ = server.exec(context.Background(), "drop database if exists "+p.db+" with (force)") })
	// Every run starts after a checkpoint: what earlier runs left in the server's buffers is not
	// written during this one, and no timed checkpoint (every 5 minutes by default, counted from
	// the last one) falls inside its window to make it pay for the full pages written after it.
	// (The server's own superuser may; on a shared server without the right it is skipped.)
	_ = server.exec(ctx, "checkpoint")
	p.dbURL = withDatabase(server.url, p.db)
	httpAddr, debugAddr := freeAddr(), freeAddr()
	p.base, p.debug = "http://"+httpAddr, debugAddr
	secret := strings.Repeat("bench-secret-", 3)
	if p.token, err = auth.Issue([]byte(secret), "bench", auth.Admin, time.Hour); err != nil {
		return nil, err
	}
	env := map[string]string{"DATABASE_URL": p.dbURL, "ORDERFLOW_LOG_LEVEL": "error", "ORDERFLOW_JWT_SECRET": secret,
		"ORDERFLOW_HTTP_ADDR": httpAddr, "ORDERFLOW_DEBUG_ADDR": debugAddr, "ORDERFLOW_DATA_DIR": dir}
	for k, v := range extraEnv {
		env[k] = v
	}
	if bin == "" {
		if bin, err = os.Executable(); err != nil {
			return nil, err
		}
	}
	p.cmd = exec.Command(bin, "platform")
	p.cmd.Env = os.Environ()
	for k, v := range env {
		p.cmd.Env = append(p.cmd.Env, k+"="+v)
	}
	logf, err := os.Create(filepath.Join(dir, "platform.log"))
	if err != nil {
		return nil, err
	}
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = p.cmd.Wait(); logf.Close(); close(p.exited) }()
	cleanup = append(cleanup, func() {
		_ = p.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-p.exited:
		case <-time.After(30 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	})
	p.client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1024, MaxConnsPerHost: 0}, Timeout: 30 * time.Second}
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		if resp, err := p.client.Get(p.base + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case <-p.exited:
			log, _ := os.ReadFile(filepath.Join(dir, "platform.log"))
			return nil, fmt.Errorf("the platform exited: %s", tail(string(log), 600))
		default:
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the platform is not ready after 2 minutes")
		}
	}
	return p, nil
}

// freeAddr is a localhost address with a free port.
func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "127.0.0.1:0"
	}
	defer l.Close()
	return l.Addr().String()
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// costs is what the platform and its PostgreSQL spent between two samples.
type costs struct {
	at                 time.Time
	platformCPU, pgCPU time.Duration // user + system
	// platformSys, pgSys are the system (kernel) part of platformCPU and pgCPU.
	platformSys, pgSys  time.Duration
	mallocs, allocBytes uint64
	pgBackendsOnly      bool // a shared server: its backends of the platform's database, not the rest of the cluster
	// transactions ended in the platform's database (committed or rolled back; PostgreSQL's
	// statistics, which a busy backend reports at most once a second) and the cluster's WAL
	// position in bytes.
	transactions, wal int64
}

// sample reads what the platform and its PostgreSQL have spent so far.
func (p *childPlatform) sample(ctx context.Context) (costs, error) {
	c := costs{at: time.Now()}
	user, system, err := processTimes(p.cmd.Process.Pid)
	if err != nil {
		return c, err
	}
	c.platformCPU, c.platformSys = user+system, system
	pids, backendsOnly, err := p.pg.pids(ctx, p.db)
	if err != nil {
		return c, err
	}
	c.pgBackendsOnly = backendsOnly
	for _, pid := range pids {
		if user, system, err := processTimes(pid); err == nil {
			c.pgCPU, c.pgSys = c.pgCPU+user+system, c.pgSys+system
		}
	}
	resp, err := p.client.Get("http://" + p.debug + "/debug/vars")
	if err != nil {
		return c, err
	}
	defer resp.Body.Close()
	var vars struct {
		Memstats struct{ Mallocs, TotalAlloc uint64 }
	}
	if err := json.NewDecoder(resp.Body).Decode(&vars); err != nil {
		return c, err
	}
	c.mallocs, c.allocBytes = vars.Memstats.Mallocs, vars.Memstats.TotalAlloc
	conn, err := pgx.Connect(ctx, p.dbURL)
	if err != nil {
		return c, err
	}
	defer conn.Close(context.Background())
	err = conn.QueryRow(ctx, `select xact_commit + xact_rollback, (pg_current_wal_lsn() - '0/0')::bigint
from pg_stat_database where datname = current_database()`).Scan(&c.transactions, &c.wal)
	return c, err
}

// cpuProfile takes a CPU profile of the platform for d and answers the share of its CPU each
// target's goroutines took (those of no target: "shared": the pools, the embedded NATS server,
// the runtime).
// If save is set, the profile is written there too (go tool pprof reads it).
func (p *childPlatform) cpuProfile(ctx context.Context, d time.Duration, save string) (map[string]float64, error) {
	raw, err := p.profile(ctx, "profile", d, save)
	if err != nil {
		return nil, err
	}
	prof, err := profile.ParseData(raw)
	if err != nil {
		return nil, err
	}
	value := len(prof.SampleType) - 1 // cpu nanoseconds
	byTarget, total := map[string]float64{}, 0.0
	for _, s := range prof.Sample {
		t := "shared"
		if l := s.Label["target"]; len(l) > 0 {
			t = l[0]
		}
		byTarget[t] += float64(s.Value[value])
		total += float64(s.Value[value])
	}
	for t := range byTarget {
		byTarget[t] /= max(total, 1)
	}
	return byTarget, nil
}

// profile takes the platform's pprof profile kind over the next d ("profile": CPU; "allocs": what
// it allocated meanwhile) and writes it to save unless that is "".
func (p *childPlatform) profile(ctx context.Context, kind string, d time.Duration, save string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s/debug/pprof/%s?seconds=%d", p.debug, kind, int(d.Seconds())), nil)
	if err != nil {
		return nil, err
	}
	resp, err := (&http.Client{Timeout: d + time.Minute}).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s profile: %s", kind, resp.Status)
	}
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if save != "" {
		if err := os.WriteFile(save, raw, 0o644); err != nil {
			return nil, err
		}
	}
	return raw, nil
}

// processCPU is the user and system CPU process pid has used (/proc/<pid>/stat).
func processCPU(pid int) (time.Duration, error) {
	user, system, err := processTimes(pid)
	return user + system, err
}

// processTimes are the user and the system CPU time process pid has used (/proc/<pid>/stat;
// Linux's clock ticks are 100 a second).
func processTimes(pid int) (user, system time.Duration, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// The command (field 2) may hold spaces: the fields after it follow its closing parenthesis.
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 13 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: %q", pid, s)
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("/proc/%d/stat: %q", pid, s)
	}
	return time.Duration(utime) * 10 * time.Millisecond, time.Duration(stime) * 10 * time.Millisecond, nil
}

// children are the processes whose parent is pid.
func children(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		f, err := os.Open(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		line, _ := bufio.NewReader(f).ReadString('\n')
		f.Close()
		fields := strings.Fields(line[strings.LastIndexByte(line, ')')+1:])
		if len(fields) > 1 && fields[1] == strconv.Itoa(pid) {
			out = append(out, child)
		}
	}
	return out
}

// pgServer is the PostgreSQL server the benchmarks use, and how to find its processes.
type pgServer struct {
	url        string
	postmaster func() (int, error) // nil: a server of someone else's (DATABASE_URL)
	stop       func()
}

// pids are the server's processes that work for database db: the whole cluster when it is the
// benchmark's own (its postmaster and every child), else the backends connected to db.
func (s pgServer) pids(ctx context.Context, db string) (pids []int, backendsOnly bool, err error) {
	if s.postmaster != nil {
		pm, err := s.postmaster()
		if err != nil {
			return nil, false, err
		}
		return append([]int{pm}, children(pm)...), false, nil
	}
	conn, err := pgx.Connect(ctx, s.url)
	if err != nil {
		return nil, true, err
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, `select pid from pg_stat_activity where datname = $1`, db)
	if err != nil {
		return nil, true, err
	}
	pids, err = pgx.CollectRows(rows, pgx.RowTo[int])
	return pids, true, err
}

func (s pgServer) exec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, s.url)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}
