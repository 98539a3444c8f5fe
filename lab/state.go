package lab

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nftpolicy/nftpolicy/lab/netlab"
)

// StateRoot holds one directory per lab.
const StateRoot = "/run/nftpolicy-lab"

const stateFile = "state.json"

// State is what a lab writes about itself as it starts, so that Down can remove it even after the
// process that made it was killed.
type State struct {
	Name string `json:"name"`
	Dir  string `json:"dir"`
	// NetnsPrefix starts the name of every network namespace of the lab.
	NetnsPrefix string `json:"netnsPrefix"`
	Kubeconfig  string `json:"kubeconfig"`
	IPFamily    string `json:"ipFamily"`
	// ProxyMode is the nodes' kube-proxy --proxy-mode.
	ProxyMode string `json:"proxyMode"`
	// Owner is the process running the lab (`lab up`, `lab scenario`, a test).
	Owner Process `json:"owner"`
	// Agents are the agents' processes; the control plane's are found by their arguments, which all
	// name a path inside Dir.
	Agents []AgentState `json:"agents"`
	// ControllerManager is kube-controller-manager, once started.
	ControllerManager *ChildState `json:"controllerManager,omitempty"`
	// Scheduler is kube-scheduler, once started (labs that run pods of the API: Options.Kubelets).
	Scheduler *ChildState `json:"scheduler,omitempty"`
	// Proxies are the nodes' kube-proxies.
	Proxies []ProxyState `json:"proxies"`
	Nodes   []NodeState  `json:"nodes"`
	// Ready is set once the lab is up.
	Ready bool `json:"ready"`
}

// NodeState is one node of a lab.
type NodeState struct {
	Name  string `json:"name"`
	Netns string `json:"netns"`
}

// AgentState is one node's agent.
type AgentState struct {
	Node    string  `json:"node"`
	Process Process `json:"process"`
	Log     string  `json:"log"`
	// Kubeconfig is the agent's own: a token of the DaemonSet's ServiceAccount (see rbac.go).
	Kubeconfig  string `json:"kubeconfig"`
	HealthAddr  string `json:"healthAddr"`
	MetricsAddr string `json:"metricsAddr"`
	// MetricsToken is a bearer token allowed to read the agent's metrics (see ScrapeMetrics).
	MetricsToken string `json:"metricsToken"`
	// DropLogFile is the agent's --drop-log-file; "" when its drop logging is off.
	DropLogFile string `json:"dropLogFile,omitempty"`
}

// ChildState is a process the lab runs for its cluster and its log.
type ChildState struct {
	Process Process `json:"process"`
	Log     string  `json:"log"`
}

// ProxyState is one node's kube-proxy. It runs in the node's network namespace, where HealthAddr
// (its /healthz) is.
type ProxyState struct {
	Node       string  `json:"node"`
	Process    Process `json:"process"`
	Log        string  `json:"log"`
	Kubeconfig string  `json:"kubeconfig"`
	HealthAddr string  `json:"healthAddr"`
}

// Process names a process by id and start time, so that a recycled id is never signalled.
type Process struct {
	PID   int    `json:"pid"`
	Start uint64 `json:"start"` // field 22 of /proc/PID/stat, in clock ticks since boot
}

var namePattern = regexp.MustCompile(`^[a-z0-9][-a-z0-9]{0,40}$`)

// newState creates the lab's state directory and writes a first state file. A directory whose owner
// still runs is another lab's: the name is refused.
func newState(name, prefix, family, proxyMode string) (*State, error) {
	if !namePattern.MatchString(name) {
		return nil, fmt.Errorf("lab name %q: want lower-case letters, digits and dashes", name)
	}
	dir := filepath.Join(StateRoot, name)
	if old, err := ReadState(name); err == nil && old.Owner.alive() {
		return nil, fmt.Errorf("lab %s is running (process %d); remove it with `nftpolicy-lab down --name %s`", name, old.Owner.PID, name)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating the lab's state directory: %w", err)
	}
	self, err := processOf(os.Getpid())
	if err != nil {
		return nil, err
	}
	s := &State{
		Name: name, Dir: dir, NetnsPrefix: prefix, IPFamily: family, ProxyMode: proxyMode, Owner: self,
		Kubeconfig: filepath.Join(dir, "kubeconfig"),
	}
	return s, s.write()
}

// write replaces the state file atomically.
func (s *State) write() error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(s.Dir, stateFile+".tmp")
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("writing the lab's state: %w", err)
	}
	return os.Rename(tmp, filepath.Join(s.Dir, stateFile))
}

// ReadState reads the state file of the lab called name.
func ReadState(name string) (*State, error) {
	data, err := os.ReadFile(filepath.Join(StateRoot, name, stateFile))
	if err != nil {
		return nil, err
	}
	var s State
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("reading the state of lab %s: %w", name, err)
	}
	return &s, nil
}

// OnlyLab names the lab of this machine when there is exactly one.
func OnlyLab() (string, error) {
	names, err := Labs()
	if err != nil {
		return "", err
	}
	switch len(names) {
	case 0:
		return "", errors.New("no lab is running")
	case 1:
		return names[0], nil
	}
	return "", fmt.Errorf("several labs (%s): choose one with --name", strings.Join(names, ", "))
}

// Labs lists the names of the labs that have a state directory.
func Labs() ([]string, error) {
	entries, err := os.ReadDir(StateRoot)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// Down removes the lab called name: it asks a living owner to stop (which cleans up), then kills
// whatever process of the lab is left, deletes its network namespaces (and with them the agents'
// tables) and its state directory.
func Down(name string) error {
	s, err := ReadState(name)
	if err != nil {
		return fmt.Errorf("finding lab %s: %w", name, err)
	}
	return removeLab(s, true)
}

// ownerStopTimeout bounds how long Down waits for a living owner to clean up by itself.
const ownerStopTimeout = 60 * time.Second

func removeLab(s *State, stopOwner bool) error {
	var errs []error
	if stopOwner && s.Owner.PID != os.Getpid() && s.Owner.alive() {
		_ = syscall.Kill(s.Owner.PID, syscall.SIGTERM)
		if !waitGone(s.Owner, ownerStopTimeout) {
			errs = append(errs, fmt.Errorf("lab process %d did not stop in %s; killing it", s.Owner.PID, ownerStopTimeout))
			_ = syscall.Kill(s.Owner.PID, syscall.SIGKILL)
			waitGone(s.Owner, 5*time.Second)
		}
	}
	var leftovers []Process
	var recorded []Process
	for _, a := range s.Agents {
		recorded = append(recorded, a.Process)
	}
	for _, p := range s.Proxies {
		recorded = append(recorded, p.Process)
	}
	for _, c := range []*ChildState{s.ControllerManager, s.Scheduler} {
		if c != nil {
			recorded = append(recorded, c.Process)
		}
	}
	for _, p := range recorded {
		if p.alive() {
			leftovers = append(leftovers, p)
		}
	}
	leftovers = append(leftovers, processesOf(s)...)
	for _, p := range leftovers {
		if p.PID != os.Getpid() && p.alive() {
			_ = syscall.Kill(p.PID, syscall.SIGKILL)
		}
	}
	for _, p := range leftovers {
		if !waitGone(p, 10*time.Second) {
			errs = append(errs, fmt.Errorf("process %d of lab %s survived SIGKILL", p.PID, s.Name))
		}
	}
	if s.NetnsPrefix != "" && strings.HasPrefix(s.NetnsPrefix, netlab.DefaultPrefix) {
		errs = append(errs, netlab.Sweep(s.NetnsPrefix))
	}
	if s.Dir != "" && strings.HasPrefix(s.Dir, StateRoot+"/") {
		errs = append(errs, os.RemoveAll(s.Dir))
	}
	return errors.Join(errs...)
}

// processOf reads the identity of a running process.
func processOf(pid int) (Process, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return Process{}, err
	}
	// The command name (field 2) is in parentheses and may hold spaces: count fields after the last ")".
	rest := string(data)
	if i := strings.LastIndexByte(rest, ')'); i >= 0 {
		rest = rest[i+1:]
	}
	fields := strings.Fields(rest)
	if len(fields) < 20 {
		return Process{}, fmt.Errorf("reading /proc/%d/stat: too few fields", pid)
	}
	start, err := strconv.ParseUint(fields[19], 10, 64) // field 22 overall
	if err != nil {
		return Process{}, fmt.Errorf("reading /proc/%d/stat: %w", pid, err)
	}
	return Process{PID: pid, Start: start}, nil
}

// alive reports whether the process still runs (a zombie counts as gone) and is the same process.
func (p Process) alive() bool {
	if p.PID <= 0 {
		return false
	}
	now, err := processOf(p.PID)
	if err != nil || now.Start != p.Start {
		return false
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.PID))
	return err == nil && !strings.Contains(string(status), "State:\tZ")
}

func waitGone(p Process, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for p.alive() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}

// processesOf lists the lab's processes by their arguments: etcd's --data-dir and the --cert-dir of
// kube-apiserver and kube-controller-manager are inside the state directory, an agent's --netns is
// one of the lab's namespaces, and a kube-proxy's --kubeconfig is in the state directory's proxies/.
// A shell or kubectl that merely names a file of the lab is left alone. Any process inside one of the
// lab's network namespaces is the lab's too.
func processesOf(s *State) []Process {
	marks := []string{"--data-dir=" + s.Dir + "/", "--cert-dir=" + s.Dir + "/", "--kubeconfig=" + s.Dir + "/" + proxiesDir + "/"}
	if s.NetnsPrefix != "" {
		marks = append(marks, "/run/netns/"+s.NetnsPrefix)
	}
	found := processesWithArg(func(arg string) bool {
		return slices.ContainsFunc(marks, func(m string) bool { return strings.HasPrefix(arg, m) })
	})
	return append(found, processesInNetns(s.NetnsPrefix)...)
}

// processesInNetns lists the processes that live in one of the lab's network namespaces (those
// named /run/netns/<prefix>*): the containers the kubelets ran, whose arguments name nothing of
// the lab.
func processesInNetns(prefix string) []Process {
	if prefix == "" {
		return nil
	}
	paths, _ := filepath.Glob("/run/netns/" + prefix + "*")
	inodes := map[uint64]bool{}
	for _, path := range paths {
		var st syscall.Stat_t
		if syscall.Stat(path, &st) == nil {
			inodes[st.Ino] = true
		}
	}
	if len(inodes) == 0 {
		return nil
	}
	return processesWhere(func(pid int) bool {
		var st syscall.Stat_t
		return syscall.Stat(fmt.Sprintf("/proc/%d/ns/net", pid), &st) == nil && inodes[st.Ino]
	})
}

// processesWithArg lists the processes one of whose arguments satisfies match.
func processesWithArg(match func(arg string) bool) []Process {
	return processesWhere(func(pid int) bool {
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		return err == nil && slices.ContainsFunc(strings.Split(string(cmdline), "\x00"), match)
	})
}

// processesWhere lists the processes, but this one, that satisfy match.
func processesWhere(match func(pid int) bool) []Process {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var found []Process
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() || !match(pid) {
			continue
		}
		if p, err := processOf(pid); err == nil {
			found = append(found, p)
		}
	}
	return found
}
