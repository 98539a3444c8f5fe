package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nftpolicy/nftpolicy/test/bench/generator"
)

// child is a measured process: the agent or the baseline.
type child struct {
	name    string
	cmd     *exec.Cmd
	log     *os.File
	metrics string // host:port of /metrics
	health  string // host:port of /readyz
	pprof   string // host:port of /debug/pprof; "" when the binary has no such flag
	exited  chan struct{}
	err     error
}

// childSpec is how to run a measured process: its command line without the listen addresses, which
// startChild adds, and extra environment variables.
type childSpec struct {
	name string
	argv []string
	env  []string
}

// startChild runs spec with a metrics, a probe and (when the binary has the flag) a pprof address
// appended as flags. The child dies with this process (Pdeathsig), so an interrupted run leaves no
// agent behind.
func startChild(spec childSpec, logPath string) (*child, error) {
	var addrs [3]string
	for i := range addrs {
		addr, err := freeLoopbackAddr()
		if err != nil {
			return nil, err
		}
		addrs[i] = addr
	}
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	c := &child{name: spec.name, log: logFile, metrics: addrs[0], health: addrs[1], exited: make(chan struct{})}
	argv := append(slices.Clone(spec.argv), "--metrics-bind-address", c.metrics, "--health-probe-bind-address", c.health)
	if hasFlag(spec.argv, "pprof-bind-address") {
		c.pprof = addrs[2]
		argv = append(argv, "--pprof-bind-address", c.pprof)
	}
	c.cmd = exec.Command(argv[0], argv[1:]...)
	c.cmd.Env = append(os.Environ(), spec.env...)
	c.cmd.Stdout, c.cmd.Stderr = logFile, logFile
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	fmt.Fprintf(logFile, "# %s %s\n", strings.Join(spec.env, " "), strings.Join(argv, " "))
	if err := c.cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("starting the %s: %w", spec.name, err)
	}
	go func() {
		c.err = c.cmd.Wait()
		close(c.exited)
	}()
	return c, nil
}

// hasFlag says whether the command argv (a binary and its leading arguments, such as a subcommand)
// accepts --name, from its -h output: the variants may run older builds that lack newer flags.
func hasFlag(argv []string, name string) bool {
	out, _ := exec.Command(argv[0], append(slices.Clone(argv[1:]), "-h")...).CombinedOutput()
	// The flag package prints a flag's name followed by its value's type, or by the end of the
	// line for a boolean flag.
	return strings.Contains(string(out), "-"+name+" ") || strings.Contains(string(out), "-"+name+"\n")
}

// waitReady polls /readyz until it passes and returns how long that took.
func (c *child) waitReady(ctx context.Context, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	hc := &http.Client{Timeout: time.Second}
	for {
		if resp, err := hc.Get("http://" + c.health + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Since(start), nil
			}
		}
		select {
		case <-c.exited:
			return 0, fmt.Errorf("the %s exited (%w); see %s", c.name, c.err, c.log.Name())
		case <-ctx.Done():
			return 0, fmt.Errorf("waiting for the %s to be ready: %w; see %s", c.name, ctx.Err(), c.log.Name())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// stop sends SIGTERM, then SIGKILL after 15 seconds.
func (c *child) stop() {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(15 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.exited
	}
	c.log.Close()
}

// Memory is one sample of a process: /proc/PID/status and its Go runtime metrics.
type Memory struct {
	AtSeconds float64 `json:"atSeconds"` // since the phase started
	RSSKiB    int64   `json:"rssKiB"`    // VmRSS
	PeakKiB   int64   `json:"peakRSSKiB"`
	// FileKiB is the part of RSS backed by files (RssFile): the pages of the binary the process
	// touched, which no collection returns.
	FileKiB int64 `json:"rssFileKiB,omitempty"`
	// From the metrics endpoint.
	HeapAlloc   float64 `json:"heapAllocBytes"`   // go_memstats_heap_alloc_bytes: live and not yet collected
	HeapInuse   float64 `json:"heapInuseBytes"`   // go_memstats_heap_inuse_bytes
	Sys         float64 `json:"sysBytes"`         // go_memstats_sys_bytes: everything the runtime took from the OS
	AllocsBytes float64 `json:"allocsBytesTotal"` // go_gc_heap_allocs_bytes_total, else go_memstats_alloc_bytes_total
	AllocsObjs  float64 `json:"allocsObjectsTotal"`
	Syncs       float64 `json:"syncs"` // nftpolicy_sync_duration_seconds_count (agent only)
	SyncSeconds float64 `json:"syncSecondsTotal"`
	GoMemLimit  float64 `json:"goMemLimitBytes,omitempty"` // go_gc_gomemlimit_bytes (unset: math.MaxInt64)
	GOGC        float64 `json:"gogc,omitempty"`            // go_gc_gogc_percent
	CPUSeconds  float64 `json:"cpuSeconds"`                // process_cpu_seconds_total since the start
	// CPU is the process's CPU time since its start from /proc/PID/stat, read with RSS (before the
	// scrape, so that between two samples lies exactly one scrape, the earlier sample's).
	CPU      *CPUTime `json:"cpu,omitempty"`
	GCCycles float64  `json:"gcCycles"`         // go_gc_duration_seconds_count since the start
	Events   int      `json:"events,omitempty"` // events sent so far (churn samples)
	// LiveHeap is the heap still allocated right after a collection that this sample forced (through
	// /debug/pprof/heap?gc=1, after reading everything above): what the process really holds, without
	// the garbage not collected yet. 0 when the process has no pprof endpoint.
	LiveHeap float64 `json:"liveHeapBytes,omitempty"`
}

// cpuSeconds is the process's CPU time, user + system, from /proc/PID/stat, or from its metrics in
// runs recorded before the harness read /proc/PID/stat.
func (m Memory) cpuSeconds() float64 {
	if m.CPU != nil {
		return m.CPU.Total()
	}
	return m.CPUSeconds
}

func (c *child) sample(ctx context.Context, since time.Time) (Memory, error) {
	m := Memory{AtSeconds: time.Since(since).Seconds()}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.cmd.Process.Pid))
	if err != nil {
		return m, fmt.Errorf("reading the status of the %s: %w", c.name, err)
	}
	m.RSSKiB = statusField(string(status), "VmRSS:")
	m.PeakKiB = statusField(string(status), "VmHWM:")
	m.FileKiB = statusField(string(status), "RssFile:")
	cpu, err := procCPU(c.cmd.Process.Pid)
	if err != nil {
		return m, fmt.Errorf("reading the CPU time of the %s: %w", c.name, err)
	}
	m.CPU = &cpu
	values, err := scrape(ctx, "http://"+c.metrics+"/metrics")
	if err != nil {
		return m, fmt.Errorf("scraping the %s: %w", c.name, err)
	}
	m.HeapAlloc = values["go_memstats_heap_alloc_bytes"]
	m.HeapInuse = values["go_memstats_heap_inuse_bytes"]
	m.Sys = values["go_memstats_sys_bytes"]
	m.AllocsBytes = values["go_memstats_alloc_bytes_total"]
	if v, ok := values["go_gc_heap_allocs_bytes_total"]; ok {
		m.AllocsBytes = v
	}
	m.AllocsObjs = values["go_memstats_mallocs_total"]
	if v, ok := values["go_gc_heap_allocs_objects_total"]; ok {
		m.AllocsObjs = v
	}
	m.Syncs = values["nftpolicy_sync_duration_seconds_count"]
	m.SyncSeconds = values["nftpolicy_sync_duration_seconds_sum"]
	m.GoMemLimit = values["go_gc_gomemlimit_bytes"]
	m.GOGC = values["go_gc_gogc_percent"]
	m.CPUSeconds = values["process_cpu_seconds_total"]
	m.GCCycles = values["go_gc_duration_seconds_count"]
	return m, nil
}

// sampleLive is sample followed by a forced collection and the live heap after it. The heap profile
// it fetches to force the collection is kept as profilePath (go tool pprof reads it).
func (c *child) sampleLive(ctx context.Context, since time.Time, profilePath string) (Memory, error) {
	m, err := c.sample(ctx, since)
	if err != nil || c.pprof == "" {
		return m, err
	}
	if err := c.saveProfile(ctx, "heap?gc=1", profilePath); err != nil {
		return m, err
	}
	values, err := scrape(ctx, "http://"+c.metrics+"/metrics")
	if err != nil {
		return m, fmt.Errorf("scraping the %s: %w", c.name, err)
	}
	m.LiveHeap = values["go_memstats_heap_alloc_bytes"]
	return m, nil
}

// saveProfile writes the child's /debug/pprof/NAME profile to path; nothing when it has no pprof
// endpoint.
func (c *child) saveProfile(ctx context.Context, name, path string) error {
	if c.pprof == "" {
		return nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+c.pprof+"/debug/pprof/"+name, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("profiling the %s (%s): %w", c.name, name, err)
	}
	defer resp.Body.Close()
	profile, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("profiling the %s (%s): %w", c.name, name, err)
	}
	return os.WriteFile(path, profile, 0o644)
}

// scrape reads the unlabelled samples of a Prometheus text exposition (labelled ones are skipped).
func scrape(ctx context.Context, url string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	// Uncompressed: compressing the response allocates more in the measured process than
	// gathering it (a new flate writer per scrape).
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	values := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' || strings.Contains(line, "{") {
			continue
		}
		name, value, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		if v, err := strconv.ParseFloat(strings.Fields(value)[0], 64); err == nil {
			values[name] = v
		}
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return values, sc.Err()
}

func statusField(status, key string) int64 {
	for _, line := range strings.Split(status, "\n") {
		if rest, ok := strings.CutPrefix(line, key); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n
			}
		}
	}
	return 0
}

func freeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("finding a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// netns is a named network namespace for the agent to program; remove always deletes it.
type netns struct{ name string }

func addNetns(name string) (*netns, error) {
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("adding network namespace %s: %w: %s", name, err, out)
	}
	return &netns{name: name}, nil
}

func (n *netns) path() string { return "/var/run/netns/" + n.name }

// addPodInterfaces gives each local pod address a host interface of its own, as a CNI plugin's veth
// would: a veth (both ends in the namespace) with a host route to the address. Without them the agent would look up
// every local pod's interface again on every sync (a pod whose interface is missing is retried), which
// is not what a node does.
func (n *netns) addPodInterfaces(addrs []netip.Addr) error {
	var batch strings.Builder
	for i, a := range addrs {
		bits := 32
		if a.Is6() {
			bits = 128
		}
		fmt.Fprintf(&batch, "link add lp%d type veth peer name lp%dp\nlink set lp%dp up\nlink set lp%d up\nroute add %s/%d dev lp%d\n", i, i, i, i, a, bits, i)
	}
	cmd := exec.Command("ip", "-n", n.name, "-batch", "-")
	cmd.Stdin = strings.NewReader(batch.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("adding the local pods' interfaces in %s: %w: %s", n.name, err, out)
	}
	return nil
}

// localPodAddrs are the addresses of the generated cluster's pods on the agent's node.
func localPodAddrs(c *generator.Cluster) []netip.Addr {
	var addrs []netip.Addr
	for _, p := range c.Snapshot.Pods {
		if p.Node == c.Snapshot.Node && !p.HostNetwork {
			addrs = append(addrs, p.IPs...)
		}
	}
	return addrs
}

func (n *netns) remove() error {
	if out, err := exec.Command("ip", "netns", "delete", n.name).CombinedOutput(); err != nil {
		return fmt.Errorf("deleting network namespace %s: %w: %s", n.name, err, out)
	}
	return nil
}
