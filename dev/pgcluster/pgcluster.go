// Package pgcluster starts a private PostgreSQL cluster from the machine's PostgreSQL server
// binaries, for `orderflow dev` and for tests on a machine without DATABASE_URL.
//
// The cluster listens on 127.0.0.1 on a free port (never a port another server holds) and on a
// Unix socket in its directory (what URL connects through), and trusts local connections. PostgreSQL refuses to run as root, so when this
// process is root the cluster runs as the unprivileged "postgres" user (or "nobody").
package pgcluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Options configure Start.
type Options struct {
	// Dir holds the cluster's data directory ("data") and its log ("postgres.log").
	Dir string
	// Ephemeral trades durability for speed (fsync off): for tests, never for data you keep.
	Ephemeral bool
	// Log receives progress lines; may be nil.
	Log func(msg string, args ...any)
	// TLSCert and TLSKey, if set, are a server certificate and its key (PEM): the cluster then
	// accepts TLS connections (clients choose: sslmode=verify-full checks the certificate).
	TLSCert, TLSKey string
}

// Cluster is a running private cluster.
type Cluster struct {
	dir, data, bin string
	port           int
	socket         string // the directory of its Unix socket; "": TCP only
	args           []string
	cred           *syscall.Credential

	mu       sync.Mutex
	proc     *os.Process
	done     chan struct{} // closed when the postmaster serving the cluster exits
	stopping bool
}

// TempDir makes a new temporary directory a cluster can live in: one the postgres user can reach,
// as a cluster started by root runs as postgres (os.MkdirTemp's own mode keeps others out).
func TempDir(prefix string) (string, error) {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return "", err
	}
	return dir, os.Chmod(dir, 0o755)
}

// Start initialises the cluster under opts.Dir if needed and starts it, or adopts the one already
// running there (a previous run that was killed). It returns once the cluster accepts connections.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	logf := opts.Log
	if logf == nil {
		logf = func(string, ...any) {}
	}
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	cred, err := credential()
	if err != nil {
		return nil, err
	}
	dir, err := clusterDir(opts.Dir, cred, logf)
	if err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data")
	c := &Cluster{dir: dir, data: data, bin: bin, cred: cred}
	if pid, port, ok := running(data); ok {
		logf("adopting running postgres cluster", "dir", data, "port", port)
		c.port, c.socket = port, socketOf(data)
		c.adopt(pid)
		if err := c.wait(ctx, 30*time.Second); err != nil {
			return nil, err
		}
		return c, nil
	}
	if _, err := os.Stat(filepath.Join(data, "PG_VERSION")); err != nil {
		logf("initialising postgres cluster", "dir", data)
		if err := c.initdb(ctx); err != nil {
			return nil, err
		}
	}
	if c.port, err = freePort(); err != nil {
		return nil, err
	}
	if err := c.configure(opts); err != nil {
		return nil, err
	}
	if err := c.launch(); err != nil {
		return nil, err
	}
	if err := c.wait(ctx, 60*time.Second); err != nil {
		_ = c.Stop()
		return nil, fmt.Errorf("%w (log: %s)", err, c.logPath())
	}
	logf("postgres cluster started", "port", c.port, "dir", data)
	return c, nil
}

// clusterDir makes the cluster's directory, owned by the unprivileged user cred (if any): wanted
// itself, or one in the temporary directory named after it when cred cannot reach wanted.
func clusterDir(wanted string, cred *syscall.Credential, logf func(string, ...any)) (string, error) {
	dir, err := filepath.Abs(wanted)
	if err != nil {
		return "", err
	}
	if cred != nil && !traversable(filepath.Dir(dir), cred.Uid) {
		// A checkout under /root, say: the unprivileged user cannot reach it. Keep the cluster in
		// a directory of its own, named after dir so the next run finds it again.
		alt := filepath.Join(os.TempDir(), fmt.Sprintf("orderflow-pg-%x", fnv64(dir)))
		logf("cluster directory not reachable by the unprivileged postgres user; using another", "wanted", dir, "using", alt)
		dir = alt
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("postgres cluster dir: %w", err)
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return "", fmt.Errorf("postgres cluster dir: %w", err)
		}
	}
	return dir, nil
}

// initdb makes a new cluster in c.data.
func (c *Cluster) initdb(ctx context.Context) error {
	cmd := exec.CommandContext(ctx, filepath.Join(c.bin, "initdb"), "-D", c.data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync", "--no-instructions")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	cmd.Dir = c.dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb %s: %w: %s", c.data, err, lastLines(string(out), 5))
	}
	return nil
}

// configure sets the server's arguments by opts: its port, its socket, durability, TLS.
func (c *Cluster) configure(opts Options) error {
	// Clients of this machine connect through a Unix socket (URL): a round trip costs both
	// sides less than through TCP's loopback. A directory too long for a socket's path, or TLS
	// (which PostgreSQL does not speak on sockets), leaves TCP.
	if sock := filepath.Join(c.dir, "s"); opts.TLSCert == "" && len(sock)+len("/.s.PGSQL.65535") < 100 {
		if err := os.MkdirAll(sock, 0o755); err != nil {
			return fmt.Errorf("postgres socket dir: %w", err)
		}
		if err := c.own(sock); err != nil {
			return fmt.Errorf("postgres socket dir: %w", err)
		}
		c.socket = sock
	}
	c.args = []string{"-D", c.data, "-p", strconv.Itoa(c.port), "-h", "127.0.0.1", "-k", c.socket,
		"-c", "max_connections=300", "-c", "shared_buffers=256MB"}
	if opts.Ephemeral {
		c.args = append(c.args, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	}
	if opts.TLSCert == "" {
		return nil
	}
	// PostgreSQL reads its key only when its own user owns it and no one else may read it.
	cert, key := filepath.Join(c.dir, "server.crt"), filepath.Join(c.dir, "server.key")
	for _, f := range [][2]string{{opts.TLSCert, cert}, {opts.TLSKey, key}} {
		b, err := os.ReadFile(f[0])
		if err != nil {
			return fmt.Errorf("postgres tls: %w", err)
		}
		if err := os.WriteFile(f[1], b, 0o600); err != nil {
			return fmt.Errorf("postgres tls: %w", err)
		}
		if err := c.own(f[1]); err != nil {
			return fmt.Errorf("postgres tls: %w", err)
		}
	}
	c.args = append(c.args, "-c", "ssl=on", "-c", "ssl_cert_file="+cert, "-c", "ssl_key_file="+key)
	return nil
}

// own gives path to the cluster's unprivileged user, if it runs as one.
func (c *Cluster) own(path string) error {
	if c.cred == nil {
		return nil
	}
	return os.Chown(path, int(c.cred.Uid), int(c.cred.Gid))
}

func (c *Cluster) logPath() string { return filepath.Join(c.dir, "postgres.log") }

// lastLogLine is the last line of the cluster's log: why it stopped, usually.
func (c *Cluster) lastLogLine() string {
	b, err := os.ReadFile(c.logPath())
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

// launch starts a postmaster on the cluster's data directory and port.
func (c *Cluster) launch() error {
	logFile, err := os.OpenFile(c.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("postgres log: %w", err)
	}
	cmd := exec.Command(filepath.Join(c.bin, "postgres"), c.args...)
	// Own process group: a Ctrl-C to the terminal reaches us, and we stop the cluster in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred, Setpgid: true}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("start postgres: %w", err)
	}
	done := make(chan struct{})
	c.mu.Lock()
	c.proc, c.done = cmd.Process, done
	c.mu.Unlock()
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		close(done)
	}()
	return nil
}

// adopt follows a postmaster this process did not start (it is not our child: its exit is polled).
func (c *Cluster) adopt(pid int) {
	proc, _ := os.FindProcess(pid)
	done := make(chan struct{})
	c.mu.Lock()
	c.proc, c.done = proc, done
	c.mu.Unlock()
	go func() {
		for proc.Signal(syscall.Signal(0)) == nil {
			time.Sleep(500 * time.Millisecond)
		}
		close(done)
	}()
}

// Supervise keeps the cluster up until ctx ends or Stop is called: when its postmaster exits (a
// crash, a kill, someone stopping it), it says so through logf and starts it again on the same
// port, so that the platform's pools reconnect by themselves; a postmaster someone else started on
// the same data directory meanwhile is adopted instead.
func (c *Cluster) Supervise(ctx context.Context, logf func(msg string, args ...any)) {
	for {
		c.mu.Lock()
		done := c.done
		c.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-done:
		}
		c.mu.Lock()
		stopping := c.stopping
		c.mu.Unlock()
		if stopping {
			return
		}
		logf("postgres cluster exited: starting it again", "dir", c.data, "port", c.port, "log", c.logPath())
		for attempt := 1; ; attempt++ {
			var err error
			if pid, port, ok := running(c.data); ok && port == c.port {
				logf("postgres cluster was started by someone else: adopting it", "pid", pid)
				c.adopt(pid)
			} else {
				_ = os.Remove(filepath.Join(c.data, "postmaster.pid")) // stale after a kill -9
				err = c.launch()
			}
			if err == nil {
				err = c.wait(ctx, 60*time.Second)
			}
			if err == nil {
				logf("postgres cluster is back", "port", c.port)
				break
			}
			if ctx.Err() != nil {
				return
			}
			logf("postgres cluster did not start again; retrying", "attempt", attempt, "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(min(time.Duration(attempt)*time.Second, 10*time.Second)):
			}
		}
	}
}

// URL returns a connection URL for database db: through the cluster's Unix socket when it has
// one, else TCPURL.
func (c *Cluster) URL(db string) string {
	if c.socket != "" {
		return fmt.Sprintf("postgres://postgres@/%s?host=%s&port=%d&sslmode=disable", db, url.QueryEscape(c.socket), c.port)
	}
	return c.TCPURL(db)
}

// TCPURL returns a connection URL for database db through TCP, on 127.0.0.1.
func (c *Cluster) TCPURL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.port, db)
}

// socketOf is the Unix socket directory of the postmaster running on data ("": none), from
// its postmaster.pid.
func socketOf(data string) string {
	b, err := os.ReadFile(filepath.Join(data, "postmaster.pid"))
	if err != nil {
		return ""
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) < 5 {
		return ""
	}
	return strings.TrimSpace(lines[4])
}

// Stop shuts the cluster down (fast shutdown: running transactions roll back) and waits for it.
// It stops the postmaster that serves the data directory now, which is not the one Start found or
// launched if someone restarted the cluster meanwhile.
func (c *Cluster) Stop() error {
	c.mu.Lock()
	c.stopping = true
	proc, done := c.proc, c.done
	c.mu.Unlock()
	if pid, _, ok := running(c.data); ok && (proc == nil || proc.Pid != pid) {
		proc, _ = os.FindProcess(pid)
		done = nil // not ours: poll
	}
	if proc == nil {
		return nil
	}
	if err := proc.Signal(syscall.SIGINT); err != nil {
		return nil // already gone
	}
	deadline := time.After(30 * time.Second)
	for {
		select {
		case <-done:
			return nil
		case <-deadline:
			_ = proc.Kill()
			return errors.New("postgres did not stop within 30s; killed")
		case <-time.After(100 * time.Millisecond):
			// A postmaster that is not our child: poll for its exit.
			if done == nil && proc.Signal(syscall.Signal(0)) != nil {
				return nil
			}
		}
	}
}

func (c *Cluster) wait(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	var last error
	c.mu.Lock()
	done := c.done
	c.mu.Unlock()
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return fmt.Errorf("postgres exited during start: %s", c.lastLogLine())
		default:
		}
		conn, err := pgx.Connect(ctx, c.URL("postgres"))
		if err == nil {
			conn.Close(ctx)
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("postgres not accepting connections after %s: %w", limit, last)
}

// BinDir finds the PostgreSQL server binaries: PG_BINDIR, pg_config --bindir, or the newest
// /usr/lib/postgresql/*/bin.
func BinDir() (string, error) {
	if d := os.Getenv("PG_BINDIR"); d != "" {
		return d, nil
	}
	var candidates []string
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		candidates = append(candidates, strings.TrimSpace(string(out)))
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	candidates = append(candidates, dirs...)
	if p, err := exec.LookPath("initdb"); err == nil {
		candidates = append(candidates, filepath.Dir(p))
	}
	for _, d := range candidates {
		if fileExists(filepath.Join(d, "initdb")) && fileExists(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	return "", errors.New("no PostgreSQL server binaries found (initdb, postgres): install the PostgreSQL server package, or set DATABASE_URL")
}

func version(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// credential returns who the cluster runs as: nil (this process's user) unless we are root.
func credential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
	}
	return nil, errors.New("running as root and no unprivileged user (postgres, nobody) to run PostgreSQL as")
}

// running reports the pid and port of a postmaster already serving data.
func running(data string) (pid, port int, ok bool) {
	f, err := os.Open(filepath.Join(data, "postmaster.pid"))
	if err != nil {
		return 0, 0, false
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) < 4 {
		return 0, 0, false
	}
	pid, _ = strconv.Atoi(strings.TrimSpace(lines[0]))
	port, _ = strconv.Atoi(strings.TrimSpace(lines[3]))
	if pid <= 0 || port <= 0 || syscall.Kill(pid, 0) != nil {
		return 0, 0, false
	}
	return pid, port, true
}

// traversable reports whether user uid can reach entries of dir: every directory from the root
// down must be searchable by it (owned with u+x, or o+x).
func traversable(dir string, uid uint32) bool {
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return false
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		mode := fi.Mode().Perm()
		if !(mode&0o001 != 0 || (ok && st.Uid == uid && mode&0o100 != 0)) {
			return false
		}
		if d == filepath.Dir(d) {
			return true
		}
	}
}

func fnv64(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// PID is the process id of the postmaster serving the cluster's data directory now.
func (c *Cluster) PID() (int, error) {
	pid, _, ok := running(c.data)
	if !ok {
		return 0, errors.New("postgres cluster is not running")
	}
	return pid, nil
}
