package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/nftpolicy/nftpolicy/lab/netlab"
)

// agentReadyTimeout bounds how long an agent may take to commit its first sync.
const agentReadyTimeout = 60 * time.Second

// agentProcess is one node's agent, a child process of the lab.
type agentProcess struct {
	node    *node
	cmd     *exec.Cmd
	log     *os.File
	health  string // host:port of /healthz and /readyz
	metrics string // host:port of the metrics endpoint
	exited  chan struct{}
	err     error // why it exited; read after exited is closed
}

// addNodes creates the node namespaces, joins every pair of them with a fabric link (each node routes
// another node's pod range and own addresses over their link), starts each node's kubelet, creates
// the Node objects with the node's own addresses as InternalIPs, and adds the external client, joined to every node.
func (l *Lab) addNodes(ctx context.Context) error {
	for i := range l.opts.Nodes {
		nn, err := l.net.AddNode()
		if err != nil {
			return fmt.Errorf("creating node %d: %w", i+1, err)
		}
		n := &node{name: fmt.Sprintf("node-%d", nn.Index), net: nn}
		for _, peer := range l.nodes {
			if err := l.net.Connect(peer.net, nn); err != nil {
				return err
			}
		}
		l.nodes = append(l.nodes, n)
		l.state.Nodes = append(l.state.Nodes, NodeState{Name: n.name, Netns: nn.Path})
		if err := l.startKubelet(ctx, n); err != nil {
			return err
		}
		if err := l.createNode(ctx, n); err != nil {
			return err
		}
	}
	var err error
	if l.external, err = l.net.AddExternal(); err != nil {
		return fmt.Errorf("creating the external client: %w", err)
	}
	return l.state.write()
}

// startAgents runs one agent per node and waits until each has committed its first sync.
func (l *Lab) startAgents(ctx context.Context) error {
	begin := time.Now()
	logDir := filepath.Join(l.state.Dir, "logs")
	if err := os.MkdirAll(logDir, 0o700); err != nil {
		return err
	}
	for _, n := range l.nodes {
		a, err := l.startAgent(ctx, n, logDir)
		if err != nil {
			return err
		}
		l.agents = append(l.agents, a)
	}
	if err := l.state.write(); err != nil {
		return err
	}
	for _, a := range l.agents {
		if err := a.waitReady(ctx, agentReadyTimeout); err != nil {
			return err
		}
	}
	l.logf("Agents ready in %s (logs in %s)", time.Since(begin).Round(10*time.Millisecond), logDir)
	return nil
}

// startAgent starts the node's agent with a kubeconfig of its own, holding a new token of the agent's
// ServiceAccount.
func (l *Lab) startAgent(ctx context.Context, n *node, logDir string) (*agentProcess, error) {
	kubeconfig, err := l.writeAgentKubeconfig(ctx, n.name)
	if err != nil {
		return nil, err
	}
	health, err := freeLoopbackAddr()
	if err != nil {
		return nil, err
	}
	metrics, err := freeLoopbackAddr()
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(logDir, "agent-"+n.name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	args := []string{
		"--node-name", n.name,
		"--netns", n.net.Path,
		"--kubeconfig", kubeconfig,
		"--health-probe-bind-address", health,
		"--metrics-bind-address", metrics,
		"-v", strconv.Itoa(l.opts.AgentVerbosity),
	}
	if l.opts.FailClosed {
		args = append(args, "--pod-interface-prefix", netlab.HostIfnamePrefix)
	}
	if agentEnforcesClusterNetworkPolicy {
		args = append(args, "--cluster-network-policies") // the lab installs their CRD
	}
	args = append(args, "--drop-log", l.opts.DropLog)
	dropLogFile := ""
	if l.opts.DropLog != DropLogOff {
		// Appended to, so the lines of a killed agent stay before its successor's.
		dropLogFile = filepath.Join(logDir, "droplog-"+n.name+".jsonl")
		args = append(args, "--drop-log-file", dropLogFile)
	}
	cmd := exec.Command(l.opts.AgentPath, append(args, l.opts.AgentArgs...)...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Its own process group: a Ctrl-C in the terminal reaches the lab only, which stops the agents
	// after it stopped using them.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("starting the agent of %s: %w", n.name, err)
	}
	a := &agentProcess{node: n, cmd: cmd, log: logFile, health: health, metrics: metrics, exited: make(chan struct{})}
	go func() {
		a.err = cmd.Wait()
		close(a.exited)
	}()
	p, err := processOf(cmd.Process.Pid)
	if err != nil {
		p = Process{PID: cmd.Process.Pid}
	}
	l.state.Agents = append(l.state.Agents, AgentState{Node: n.name, Process: p, Log: logPath, Kubeconfig: kubeconfig, HealthAddr: health, MetricsAddr: metrics, MetricsToken: l.metricsToken, DropLogFile: dropLogFile})
	if err := l.registerAgentPod(ctx, n, metrics); err != nil {
		_ = cmd.Process.Kill()
		<-a.exited
		logFile.Close()
		return nil, err
	}
	return a, nil
}

// waitReady polls the agent's /readyz, which passes once its first sync committed, until it passes
// and the metrics endpoint listens too: the secure metrics server makes its self-signed certificate
// before it listens, which may take longer than the first sync on a busy machine.
func (a *agentProcess) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	hc := &http.Client{Timeout: time.Second}
	url := "http://" + a.health + "/readyz"
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if resp, err := hc.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && a.metricsListening(ctx) {
				return nil
			}
		}
		select {
		case <-a.exited:
			return fmt.Errorf("the agent of %s exited (%w); see %s", a.node.name, a.err, a.log.Name())
		case <-ctx.Done():
			return fmt.Errorf("waiting for the agent of %s to be ready: %w; see %s", a.node.name, ctx.Err(), a.log.Name())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// metricsListening reports whether the agent's metrics endpoint accepts connections.
func (a *agentProcess) metricsListening(ctx context.Context) bool {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", a.metrics)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

// agentStopTimeout is how long an agent gets to stop after SIGTERM before it is killed.
const agentStopTimeout = 10 * time.Second

// stopAgents stops every agent: SIGTERM, then SIGKILL after agentStopTimeout.
func (l *Lab) stopAgents() error {
	var errs []error
	for _, a := range l.agents {
		_ = a.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, a := range l.agents {
		select {
		case <-a.exited:
		case <-time.After(agentStopTimeout):
			_ = a.cmd.Process.Kill()
			<-a.exited
			errs = append(errs, fmt.Errorf("the agent of %s did not stop in %s and was killed", a.node.name, agentStopTimeout))
		}
		a.log.Close()
	}
	l.agents = nil
	return errors.Join(errs...)
}

// freeLoopbackAddr returns a loopback address with a port nothing listens on right now.
func freeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("finding a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
