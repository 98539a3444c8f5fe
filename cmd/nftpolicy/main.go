// Command nftpolicy enforces Kubernetes NetworkPolicies with nftables, one agent per node.
//
// This is the binary the DaemonSet ships; package agent assembles what it runs. `nftpolicy --cleanup`
// removes the agent's table and exits: the rules stay in place across agent restarts and crashes, so
// removing them is a deliberate step. The lab is another binary, cmd/nftpolicy-lab.
package main

import (
	"flag"
	"fmt"
	"os"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/nftpolicy/nftpolicy/cmd/nftpolicy/agent"
)

func main() {
	os.Exit(runAgent(os.Args[1:]))
}

// runAgent parses the agent's flags and runs it, or removes its table with --cleanup.
func runAgent(args []string) int {
	fs := flag.NewFlagSet("nftpolicy", flag.ContinueOnError)
	opts := agent.Options{}
	fs.StringVar(&opts.NodeName, "node-name", os.Getenv("NODE_NAME"), "The node whose pods this agent programs (default $NODE_NAME).")
	kubeconfig := fs.String("kubeconfig", "", "Path to a kubeconfig; in-cluster configuration or $KUBECONFIG when empty.")
	fs.StringVar(&opts.NetNSPath, "netns", "", "Program the network namespace at this path instead of the agent's own.")
	fs.StringVar(&opts.Table, "table", "nftpolicy", "The nftables table (family inet) the agent owns.")
	fs.StringVar(&opts.MetricsAddr, "metrics-bind-address", ":9474", "Address of the Prometheus metrics endpoint; \"0\" disables it.")
	fs.BoolVar(&opts.MetricsSecure, "metrics-secure", true, "Serve metrics over HTTPS to callers the API server authenticates and authorizes (a token allowed to get the non-resource URL /metrics, e.g. through the nftpolicy-metrics-reader ClusterRole). false: plain HTTP, open to anyone who reaches the address.")
	fs.StringVar(&opts.MetricsCertPath, "metrics-cert-path", "", "Directory holding tls.crt and tls.key for the secure metrics endpoint (reloaded when they change); empty: a self-signed certificate made at start.")
	fs.BoolVar(&opts.ClusterNetworkPolicies, "cluster-network-policies", false, "Watch and enforce ClusterNetworkPolicies (policy.networking.k8s.io v1beta1: Admin and Baseline tiers); their CRD must be installed. Experimental.")
	fs.BoolVar(&opts.PodDenyCounters, "pod-deny-counters", false, "Count each isolated pod's default deny on its own: nftpolicy_default_deny_connections_total gets a pod label (one series per isolated pod and direction, instead of per namespace).")
	fs.StringVar(&opts.ProbeAddr, "health-probe-bind-address", ":9475", "Address of the /healthz and /readyz endpoints; \"0\" disables them.")
	fs.BoolVar(&opts.VerifyIncremental, "verify-incremental", false, "Check every incremental sync against a full resolve of the cache and repair any difference (costs a full resolve per sync; for tests and debugging).")
	memoryLimit := fs.String("memory-limit", os.Getenv("MEMORY_LIMIT"), "The agent's memory limit, a quantity such as 256Mi or a number of bytes (default $MEMORY_LIMIT, which the DaemonSet sets to the container's limits.memory); the Go runtime's soft memory limit (GOMEMLIMIT) is set to 90% of it. Empty or 0: GOMEMLIMIT from the environment, else none.")
	fs.IntVar(&opts.SteadyGCPercent, "steady-gc-percent", agent.DefaultSteadyGCPercent, "The garbage collector's target (as GOGC) once the first sync has committed: the steady state allocates little, so a low target keeps the agent's memory where the first sync left it for little CPU. 0 keeps GOGC.")
	fs.StringVar(&opts.PprofAddr, "pprof-bind-address", "", "Address of net/http/pprof, for profiling the agent's memory and CPU; empty disables it.")
	fs.StringVar(&opts.PodInterfacePrefix, "pod-interface-prefix", "", "Fail-closed mode: the prefix of the CNI's host-side pod interface names (e.g. cali, veth). "+
		"Traffic from or to an interface with this prefix is dropped until the agent has programmed its pod, "+
		"so a new pod is never reachable, nor reaches anything, before its policies are in the kernel. "+
		"The cost: a pod's first connections wait for the agent (about one sync after its IP is reported), "+
		"and while the agent is down, new pods have no network. Interfaces without the prefix are not covered. "+
		"Empty (the default): off, a pod is open until programmed.")
	fs.StringVar(&opts.DropLog, "drop-log", agent.DropLogOff, "Drop logging: off; namespace (only namespaces annotated nftpolicy.io/log: deny|all); deny (every isolated pod's default deny and the anti-spoofing drops, unless a namespace's annotation says off); all (deny plus the first packet of each allowed connection, naming the admitting rule). Records are JSON lines on standard output.")
	dropLogGroup := fs.Uint("drop-log-group", agent.DefaultDropLogGroup, "The NFLOG group of the drop log.")
	dropLogPairRate := fs.Uint("drop-log-pair-rate", agent.DefaultDropLogPairRate, "Drop log records per second per source and destination address pair at one drop point.")
	dropLogRate := fs.Uint("drop-log-rate", agent.DefaultDropLogRate, "Drop log records per second at one drop point.")
	fs.StringVar(&opts.DropLogFile, "drop-log-file", "", "A file that also receives the drop log's JSON lines (appended to); empty: standard output only.")
	cleanup := fs.Bool("cleanup", false, "Remove the agent's table, and with it every rule it programmed, then exit.")
	klog.InitFlags(fs) // -v and the other klog flags
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "nftpolicy: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if *dropLogGroup > 0xffff || *dropLogPairRate > 0xffffffff || *dropLogRate > 0xffffffff {
		fmt.Fprintln(os.Stderr, "nftpolicy: --drop-log-group is at most 65535, the rates at most 4294967295")
		return 2
	}
	opts.DropLogGroup, opts.DropLogPairRate, opts.DropLogRate = uint16(*dropLogGroup), uint32(*dropLogPairRate), uint32(*dropLogRate)
	var err error
	if opts.MemoryLimit, err = agent.ParseMemoryLimit(*memoryLimit); err != nil {
		fmt.Fprintf(os.Stderr, "nftpolicy: %v\n", err)
		return 2
	}
	ctrl.SetLogger(klog.NewKlogr())
	defer klog.Flush()

	ctx := logf.IntoContext(ctrl.SetupSignalHandler(), ctrl.Log.WithName("agent"))

	if *cleanup {
		if err := agent.Cleanup(ctx, opts); err != nil {
			klog.ErrorS(err, "Cleanup failed")
			return 1
		}
		return 0
	}
	cfg, err := restConfig(*kubeconfig)
	if err != nil {
		klog.ErrorS(err, "Loading the API server configuration")
		return 1
	}
	if err := agent.Run(ctx, cfg, opts); err != nil {
		klog.ErrorS(err, "Agent failed")
		return 1
	}
	return 0
}

func restConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig != "" {
		return clientcmd.BuildConfigFromFlags("", kubeconfig)
	}
	return ctrl.GetConfig()
}
