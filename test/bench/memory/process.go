package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// child is a measured process: the agent or the baseline.
type child struct {
	name    string
	cmd     *exec.Cmd
	log     *os.File
	metrics string // host:port of /metrics
	health  string // host:port of /readyz
	exited  chan struct{}
	err     error
}

// startChild runs argv with a metrics and a probe address appended as flags. The child dies with this
// process (Pdeathsig), so an interrupted run leaves no agent behind.
func startChild(name, logPath string, argv ...string) (*child, error) {
	metrics, err := freeLoopbackAddr()
	if err != nil {
		return nil, err
	}
	health, err := freeLoopbackAddr()
	if err != nil {
		return nil, err
	}
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	argv = append(argv, "--metrics-bind-address", metrics, "--health-probe-bind-address", health)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("starting the %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, log: logFile, metrics: metrics, health: health, exited: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		close(c.exited)
	}()
	return c, nil
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
	// From the metrics endpoint.
	HeapAlloc   float64 `json:"heapAllocBytes"`   // go_memstats_heap_alloc_bytes: live and not yet collected
	HeapInuse   float64 `json:"heapInuseBytes"`   // go_memstats_heap_inuse_bytes
	Sys         float64 `json:"sysBytes"`         // go_memstats_sys_bytes: everything the runtime took from the OS
	AllocsBytes float64 `json:"allocsBytesTotal"` // go_gc_heap_allocs_bytes_total, else go_memstats_alloc_bytes_total
	AllocsObjs  float64 `json:"allocsObjectsTotal"`
	Syncs       float64 `json:"syncs"` // nftpolicy_sync_duration_seconds_count (agent only)
	SyncSeconds float64 `json:"syncSecondsTotal"`
}

func (c *child) sample(ctx context.Context, since time.Time) (Memory, error) {
	m := Memory{AtSeconds: time.Since(since).Seconds()}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.cmd.Process.Pid))
	if err != nil {
		return m, fmt.Errorf("reading the status of the %s: %w", c.name, err)
	}
	m.RSSKiB = statusField(string(status), "VmRSS:")
	m.PeakKiB = statusField(string(status), "VmHWM:")
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
	return m, nil
}

// scrape reads the unlabelled samples of a Prometheus text exposition (labelled ones are skipped).
func scrape(ctx context.Context, url string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
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

func (n *netns) remove() error {
	if out, err := exec.Command("ip", "netns", "delete", n.name).CombinedOutput(); err != nil {
		return fmt.Errorf("deleting network namespace %s: %w: %s", n.name, err, out)
	}
	return nil
}
