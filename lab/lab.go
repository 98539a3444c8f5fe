// Package lab runs a NetworkPolicy lab on one machine: a real kube-apiserver, etcd and
// kube-controller-manager on loopback, network namespaces standing in for nodes and pods
// (lab/netlab), one real kube-proxy and one real agent per node as child processes, and the lab
// itself acting as the kubelet. A Lab is the scenario.Cluster the scenario runner drives;
// cmd/nftpolicy-lab is its command line, and Attach reaches a lab it left running.
//
// Every lab keeps its state under /run/nftpolicy-lab/NAME/: state.json (what to remove), the
// kubeconfigs, etcd's data, the API server's certificates and the logs of the agents,
// kube-controller-manager and the kube-proxies. Down removes a lab from that file alone, so a lab
// whose process was killed can still be cleaned up.
package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	cnpv1beta1 "sigs.k8s.io/network-policy-api/apis/v1beta1"

	policyv1alpha1 "github.com/nftpolicy/nftpolicy/api/v1alpha1"
	"github.com/nftpolicy/nftpolicy/lab/kubelet"
	"github.com/nftpolicy/nftpolicy/lab/netlab"
	"github.com/nftpolicy/nftpolicy/lab/scenario"
)

// IP families a lab can publish in pod status.
const (
	FamilyIPv4 = "ipv4"
	FamilyIPv6 = "ipv6"
	FamilyDual = "dual"
)

// kube-proxy modes a lab can run, its --proxy-mode.
const (
	ProxyModeNFTables = "nftables"
	ProxyModeIPTables = "iptables"
	ProxyModeIPVS     = "ipvs"
)

// Drop log levels of the lab's agents (Options.DropLog), their --drop-log.
const (
	DropLogOff       = "off"
	DropLogNamespace = "namespace"
	DropLogDeny      = "deny"
	DropLogAll       = "all"
)

// DefaultDropLog is the agents' drop log level unless told otherwise: nothing is logged until a
// namespace is annotated nftpolicy.io/log, and the tables are as without drop logging until then.
const DefaultDropLog = DropLogNamespace

// DefaultNodes is how many nodes a lab has unless told otherwise: enough for same-node and
// cross-node pairs.
const DefaultNodes = 2

// Options configure a lab.
type Options struct {
	// Name names the lab's state directory; "" picks a unique one.
	Name string
	// Nodes is the number of nodes; 0 means DefaultNodes.
	Nodes int
	// IPFamily is FamilyIPv4 (the default), FamilyIPv6 or FamilyDual: the addresses pods publish.
	IPFamily string
	// ProxyMode is the --proxy-mode of the kube-proxy each node runs: ProxyModeNFTables (the
	// default), ProxyModeIPTables or ProxyModeIPVS.
	ProxyMode string
	// AssetsDir holds kube-apiserver, etcd, kube-controller-manager and kube-proxy; "" means $KUBEBUILDER_ASSETS, the setup cache, or
	// hack/build-k8s.sh.
	AssetsDir string
	// AgentPath is the agent binary (cmd/nftpolicy) run on each node; "" means the nftpolicy
	// beside this executable, as `make build` puts bin/nftpolicy beside bin/nftpolicy-lab.
	AgentPath string
	// AgentVerbosity is the agents' -v.
	AgentVerbosity int
	// AgentArgs are more flags for every agent, e.g. --verify-incremental.
	AgentArgs []string
	// DropLog is every agent's --drop-log: DropLogOff, DropLogNamespace (the default), DropLogDeny
	// or DropLogAll. Unless off, each agent also writes the JSON lines to --drop-log-file in the
	// lab's state directory (AgentState.DropLogFile), which ReadDropLog and `nftpolicy-lab droplog` read.
	DropLog string
	// FailClosed runs the agents in the fail-closed mode, with the prefix of the lab's pod interfaces
	// (--pod-interface-prefix=netlab.HostIfnamePrefix).
	FailClosed bool
	// IPReportDelay is how long the lab, as kubelet, waits between a new pod's network being up
	// (interface, addresses, routes, servers) and reporting its IPs in the pod's status, as a real
	// kubelet and CNI take a while to. 0 reports them at once.
	IPReportDelay time.Duration
	// OnPodNetworkUp, when set, is called as each new pod's network is up, before the IP report
	// delay. It runs with the lab's lock held: it must not call the Lab's methods.
	OnPodNetworkUp func(ref string, pod *netlab.Pod)
	// RepoRoot is the checkout holding config/crd/bases; "" means found from the working directory or
	// the executable.
	RepoRoot string
	// Log receives progress lines; nil discards them.
	Log io.Writer
}

// Lab is a running lab. Its scenario.Cluster methods are safe for concurrent use.
type Lab struct {
	opts      Options
	state     *State
	net       *netlab.Lab
	plane     *controlPlane
	proxies   []*proxyProcess
	client    client.Client
	clientset kubernetes.Interface
	// restConfig reaches the API server as the lab's admin.
	restConfig *rest.Config
	// assets is the directory of the Kubernetes binaries the lab runs.
	assets string
	// kubeletPKI is the kubelets' serving certificate and the CA of the API server's client
	// certificate.
	kubeletPKI *kubelet.PKI
	// identity is the agents' ServiceAccount, as config/default installs it.
	identity AgentIdentity
	// metricsToken is a token allowed to read the agents' metrics (see installMetricsReader).
	metricsToken string
	nodes        []*node
	agents       []*agentProcess
	// external stands for a machine outside the cluster; see ExternalClient.
	external *netlab.External

	mu   sync.RWMutex
	pods map[string]*labPod // by "namespace/name"
	// namespaces are the namespaces the current cluster created or took over.
	namespaces []string

	closeOnce sync.Once
	closeErr  error
}

// node is one node namespace and its Node object.
type node struct {
	name string
	net  *netlab.Node
	// kubelet runs the pods bound to the node that the lab does not run itself.
	kubelet *kubelet.Kubelet
}

var _ scenario.Cluster = (*Lab)(nil)

// Start brings a lab up: control plane, nodes, a kube-proxy per node, agents. It returns once every
// kube-proxy has synced and every agent is ready. On failure everything made so far is removed.
func Start(ctx context.Context, opts Options) (l *Lab, err error) {
	if reason := netlab.Unavailable(); reason != "" {
		return nil, errors.New(reason)
	}
	opts, err = opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := proxyModeUsable(opts.ProxyMode); err != nil {
		return nil, err
	}
	netLab, err := netlab.New()
	if err != nil {
		return nil, err
	}
	name := opts.Name
	if name == "" {
		name = strings.TrimSuffix(strings.TrimPrefix(netLab.Prefix(), netlab.DefaultPrefix), "-")
	}
	l = &Lab{opts: opts, net: netLab, pods: map[string]*labPod{}}
	state, err := newState(name, netLab.Prefix(), opts.IPFamily, opts.ProxyMode)
	if err != nil {
		return nil, err
	}
	l.state = state
	// started, not l: the returns below set l to nil.
	started := l
	defer func() {
		if err != nil {
			err = errors.Join(err, started.Close())
		}
	}()
	begin := time.Now()
	l.logf("Starting lab %s (state in %s)", name, state.Dir)
	if err := l.startControlPlane(ctx); err != nil {
		return nil, err
	}
	if err := l.installAgentIdentity(ctx); err != nil {
		return nil, err
	}
	if err := l.addNodes(ctx); err != nil {
		return nil, err
	}
	if err := l.startProxies(ctx); err != nil {
		return nil, err
	}
	if err := l.startAgents(ctx); err != nil {
		return nil, err
	}
	l.logf("Lab %s is up in %s: %d nodes, kubeconfig %s", name, time.Since(begin).Round(10*time.Millisecond), len(l.nodes), state.Kubeconfig)
	return l, nil
}

func (o Options) withDefaults() (Options, error) {
	if o.Nodes <= 0 {
		o.Nodes = DefaultNodes
	}
	if o.Nodes > 99 {
		return o, errors.New("a lab has at most 99 nodes")
	}
	switch o.IPFamily {
	case "":
		o.IPFamily = FamilyIPv4
	case FamilyIPv4, FamilyIPv6, FamilyDual:
	default:
		return o, fmt.Errorf("unknown IP family %q: want ipv4, ipv6 or dual", o.IPFamily)
	}
	switch o.ProxyMode {
	case "":
		o.ProxyMode = ProxyModeNFTables
	case ProxyModeNFTables, ProxyModeIPTables, ProxyModeIPVS:
	default:
		return o, fmt.Errorf("unknown kube-proxy mode %q: want nftables, iptables or ipvs", o.ProxyMode)
	}
	switch o.DropLog {
	case "":
		o.DropLog = DefaultDropLog
	case DropLogOff, DropLogNamespace, DropLogDeny, DropLogAll:
	default:
		return o, fmt.Errorf("unknown drop log level %q: want off, namespace, deny or all", o.DropLog)
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.IPReportDelay < 0 {
		return o, fmt.Errorf("the IP report delay %v is negative", o.IPReportDelay)
	}
	if o.AgentPath == "" {
		path, err := agentBesideExecutable()
		if err != nil {
			return o, err
		}
		o.AgentPath = path
	}
	if o.RepoRoot == "" {
		root, err := findRepoRoot()
		if err != nil {
			return o, err
		}
		o.RepoRoot = root
	}
	return o, nil
}

// Name is the lab's name, the one `nftpolicy-lab down --name` takes.
func (l *Lab) Name() string { return l.state.Name }

// AssetsDir is the directory of the Kubernetes binaries the lab runs.
func (l *Lab) AssetsDir() string { return l.assets }

// ServerVersion is the API server's release, e.g. v1.37.2.
func (l *Lab) ServerVersion() (string, error) {
	v, err := l.clientset.Discovery().ServerVersion()
	if err != nil {
		return "", fmt.Errorf("asking the API server its version: %w", err)
	}
	return v.GitVersion, nil
}

// Kubeconfig is the path of a kubeconfig for the lab's API server.
func (l *Lab) Kubeconfig() string { return l.state.Kubeconfig }

// Client is a client of the lab's API server that knows the agent's types.
func (l *Lab) Client() client.Client { return l.client }

// MarkUp records in the lab's state that the lab is up, with its cluster set up: only then do
// `nftpolicy-lab apply`, `probe` and `matrix` attach to it.
func (l *Lab) MarkUp() error {
	l.state.Ready = true
	return l.state.write()
}

// State is what Down needs to remove the lab.
func (l *Lab) State() State { return *l.state }

// Families are the scenario families the lab publishes: one, or both on a dual-stack lab.
func (l *Lab) Families() []scenario.Family {
	switch l.opts.IPFamily {
	case FamilyIPv6:
		return []scenario.Family{scenario.IPv6}
	case FamilyDual:
		return []scenario.Family{scenario.IPv4, scenario.IPv6}
	}
	return []scenario.Family{scenario.IPv4}
}

func (l *Lab) logf(format string, args ...any) {
	fmt.Fprintf(l.opts.Log, format+"\n", args...)
}

// Close removes the lab: pods and their servers, kube-proxies, agents, control plane, namespaces,
// state directory.
// It runs once; later calls return the first call's result.
func (l *Lab) Close() error {
	l.closeOnce.Do(func() {
		var errs []error
		l.mu.Lock()
		for _, p := range l.pods {
			p.closeServers()
		}
		l.pods = map[string]*labPod{}
		l.mu.Unlock()
		errs = append(errs, l.stopKubelets())
		errs = append(errs, l.stopProxies())
		errs = append(errs, l.stopAgents())
		if l.plane != nil {
			errs = append(errs, l.plane.stop())
		}
		errs = append(errs, l.net.Close())
		// Whatever the steps above missed (a half-started process, a namespace of a failed AddPod).
		errs = append(errs, removeLab(l.state, false))
		l.closeErr = errors.Join(errs...)
	})
	return l.closeErr
}

// findRepoRoot walks up from the working directory, then from the executable, to the checkout of
// this module.
func findRepoRoot() (string, error) {
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if exe, err := os.Executable(); err == nil {
		starts = append(starts, filepath.Dir(exe))
	}
	for _, dir := range starts {
		for range 32 {
			data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
			if err == nil && strings.Contains(string(data), "module github.com/nftpolicy/nftpolicy\n") {
				return dir, nil
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	return "", errors.New("finding the nftpolicy checkout (for config/crd/bases): run from inside it")
}

// agentBinaryName is the agent's binary, which the lab looks for beside its own.
const agentBinaryName = "nftpolicy"

// agentBesideExecutable is the agent binary in the directory of the running executable.
func agentBesideExecutable() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("finding the agent binary: %w", err)
	}
	path := filepath.Join(filepath.Dir(exe), agentBinaryName)
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("finding the agent binary beside %s (build it with `make build`, or pass --agent): %w", exe, err)
	}
	return path, nil
}

// scheme is what the lab's client reads and writes: the built-in types and the agent's CRDs.
var scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(policyv1alpha1.AddToScheme(s))
	utilruntime.Must(cnpv1beta1.Install(s))
	return s
}()
