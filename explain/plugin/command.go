// Package plugin is `kubectl nftpolicy`: the kubectl plugin's commands, also run by
// `nftpolicy-lab explain` with the lab's kubeconfig.
package plugin

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/nftpolicy/nftpolicy/explain"
	"github.com/nftpolicy/nftpolicy/explain/dataplane"
	"github.com/nftpolicy/nftpolicy/nft"
	"github.com/nftpolicy/nftpolicy/selectors"
)

// Exit statuses of explain: scripts tell an allowed connection from a denied one, and both from a
// disagreement between the policies, the agent's ruleset and the kernel.
const (
	ExitAllowed = 0
	ExitDenied  = 1
	ExitError   = 2
	ExitDrift   = 3
)

const usage = `Usage: kubectl nftpolicy explain SRC DST PORT[/PROTO] [flags]

Explains why a new connection from SRC to DST is allowed or denied: what the NetworkPolicies say
(the spec answer), and what the tables of the nodes involved do with its first packet, read back
from their kernels by the nodes' nftpolicy agents (the dataplane answer).

  SRC, DST   namespace/pod, an IP address, or (DST only) svc/namespace/name: each backend of the
             Service, on the target port of the Service port PORT
  PORT       a number or a port name (resolved on each destination pod); PROTO tcp (default), udp, sctp

Exit status: 0 allowed, 1 denied, 2 error, 3 drift (the spec, an agent's ruleset and its kernel disagree).
`

// Main runs `kubectl nftpolicy ARGS...` and returns its exit status.
func Main(ctx context.Context, args []string, streams genericiooptions.IOStreams) int {
	if len(args) == 0 || args[0] != "explain" {
		fmt.Fprint(streams.ErrOut, usage)
		return ExitError
	}
	o := NewExplainOptions(streams)
	fs := pflag.NewFlagSet("explain", pflag.ContinueOnError)
	fs.SetOutput(streams.ErrOut)
	fs.Usage = func() { fmt.Fprint(streams.ErrOut, usage+"\nFlags:\n"+fs.FlagUsages()) }
	o.AddFlags(fs)
	if err := fs.Parse(args[1:]); err != nil {
		return ExitError
	}
	if fs.NArg() != 3 {
		fs.Usage()
		return ExitError
	}
	code, err := o.Run(ctx, fs.Arg(0), fs.Arg(1), fs.Arg(2))
	if err != nil {
		fmt.Fprintln(streams.ErrOut, "error:", err)
	}
	return code
}

// ExplainOptions are explain's flags.
type ExplainOptions struct {
	ConfigFlags    *genericclioptions.ConfigFlags
	Output         string
	Family         int
	AgentNamespace string
	SpecOnly       bool
	genericiooptions.IOStreams
}

// NewExplainOptions returns the defaults.
func NewExplainOptions(streams genericiooptions.IOStreams) *ExplainOptions {
	return &ExplainOptions{ConfigFlags: genericclioptions.NewConfigFlags(true), Output: "text", AgentNamespace: "nftpolicy-system", IOStreams: streams}
}

// AddFlags registers the standard kubeconfig flags and explain's own.
func (o *ExplainOptions) AddFlags(fs *pflag.FlagSet) {
	o.ConfigFlags.AddFlags(fs)
	fs.StringVarP(&o.Output, "output", "o", o.Output, "Output format: text, json or yaml.")
	fs.IntVar(&o.Family, "family", 0, "IP family of a dual-stack connection: 4 or 6 (default: the source's primary family).")
	fs.StringVar(&o.AgentNamespace, "agent-namespace", o.AgentNamespace, "Namespace of the nftpolicy agents' pods.")
	fs.BoolVar(&o.SpecOnly, "spec-only", false, "Answer from the policies only, without asking the agents.")
}

// Run explains one connection (one per backend of a Service) and writes the reports.
func (o *ExplainOptions) Run(ctx context.Context, src, dst, port string) (int, error) {
	switch o.Output {
	case "text", "json", "yaml":
	default:
		return ExitError, fmt.Errorf("--output %q: want text, json or yaml", o.Output)
	}
	if o.Family != 0 && o.Family != 4 && o.Family != 6 {
		return ExitError, fmt.Errorf("--family %d: want 4 or 6", o.Family)
	}
	srcTarget, err := explain.ParseTarget(src)
	if err != nil {
		return ExitError, err
	}
	portSpec, err := explain.ParsePortSpec(port)
	if err != nil {
		return ExitError, err
	}
	cfg, err := o.ConfigFlags.ToRESTConfig()
	if err != nil {
		return ExitError, err
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return ExitError, err
	}
	snap, err := readCluster(ctx, client)
	if err != nil {
		return ExitError, err
	}
	dests, err := destinations(ctx, client, dst, portSpec)
	if err != nil {
		return ExitError, err
	}
	ag := &agents{cfg: cfg, client: client, namespace: o.AgentNamespace}
	var reports []*explain.Report
	for _, d := range dests {
		spec, err := explain.Explain(snap, srcTarget, d.target, d.port, o.Family)
		if err != nil {
			return ExitError, err
		}
		r := &explain.Report{Spec: *spec}
		if !o.SpecOnly {
			if err := askAgents(ctx, ag, r); err != nil {
				return ExitError, err
			}
		}
		reports = append(reports, r)
	}
	if err := o.write(reports); err != nil {
		return ExitError, err
	}
	return exitCode(reports), nil
}

// exitCode: drift anywhere wins; else denied when any backend is denied.
func exitCode(reports []*explain.Report) int {
	code := ExitAllowed
	for _, r := range reports {
		if !r.Agrees() {
			return ExitDrift
		}
		if !r.Spec.Allowed {
			code = ExitDenied
		}
	}
	return code
}

func (o *ExplainOptions) write(reports []*explain.Report) error {
	switch o.Output {
	case "json":
		enc := json.NewEncoder(o.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(reports)
	case "yaml":
		b, err := yaml.Marshal(reports)
		if err != nil {
			return err
		}
		_, err = o.Out.Write(b)
		return err
	}
	for i, r := range reports {
		if i > 0 {
			fmt.Fprintln(o.Out)
		}
		if err := r.WriteText(o.Out); err != nil {
			return err
		}
	}
	return nil
}

// readCluster lists what the spec answer is computed from.
func readCluster(ctx context.Context, client kubernetes.Interface) (*selectors.Snapshot, error) {
	pods, err := client.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing pods: %w", err)
	}
	nss, err := client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing namespaces: %w", err)
	}
	pols, err := client.NetworkingV1().NetworkPolicies("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing NetworkPolicies: %w", err)
	}
	return explain.SnapshotFromObjects(pods.Items, nss.Items, pols.Items), nil
}

// destination is one connection's destination and port.
type destination struct {
	target explain.Target
	port   explain.PortSpec
}

// destinations reads DST: a pod or an address, or each backend of a Service.
func destinations(ctx context.Context, client kubernetes.Interface, dst string, port explain.PortSpec) ([]destination, error) {
	rest, ok := strings.CutPrefix(dst, "svc/")
	if !ok {
		t, err := explain.ParseTarget(dst)
		if err != nil {
			return nil, err
		}
		return []destination{{t, port}}, nil
	}
	ns, name, ok := strings.Cut(rest, "/")
	if !ok || ns == "" || name == "" {
		return nil, fmt.Errorf("reading %q: want svc/namespace/name", dst)
	}
	svc, err := client.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("reading Service %s/%s: %w", ns, name, err)
	}
	slices, err := client.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + name})
	if err != nil {
		return nil, fmt.Errorf("listing the EndpointSlices of Service %s/%s: %w", ns, name, err)
	}
	svcPort := intstr.FromString(port.Name)
	if port.Name == "" {
		svcPort = intstr.FromInt32(int32(port.Number))
	}
	backends, err := explain.ServiceBackends(svc, slices.Items, svcPort, port.Protocol)
	if err != nil {
		return nil, err
	}
	if len(backends) == 0 {
		return nil, fmt.Errorf("service %s/%s has no ready endpoints for port %s", ns, name, port)
	}
	out := make([]destination, 0, len(backends))
	for _, b := range backends {
		out = append(out, destination{b.Target(), b.Port()})
	}
	return out, nil
}

// askAgents adds the dataplane answers: the source pod's node for its egress, the destination
// pod's node for its ingress. Report.Agreements compares them with the spec.
func askAgents(ctx context.Context, ag *agents, r *explain.Report) error {
	c := r.Spec.Connection
	q := dataplane.Query{Src: c.SrcIP, Dst: c.DstIP, Port: c.Port, Proto: protoNumber(c.Protocol)}
	for _, side := range []struct {
		dir explain.Direction
		ep  explain.Endpoint
	}{{explain.Egress, c.Source}, {explain.Ingress, c.Destination}} {
		if side.ep.Kind != explain.PodEndpoint {
			continue
		}
		if side.ep.Node == "" {
			r.Drift = append(r.Drift, fmt.Sprintf("pod %s is not scheduled: no node enforces its %s", side.ep, side.dir))
			continue
		}
		q.Direction = side.dir
		var ans explain.DataplaneAnswer
		if err := ag.get(ctx, side.ep.Node, dataplane.Path, q.Values(), &ans); err != nil {
			return err
		}
		r.Dataplane = append(r.Dataplane, ans)
	}
	return nil
}

func protoNumber(p corev1.Protocol) uint8 {
	switch p {
	case corev1.ProtocolUDP:
		return nft.ProtoUDP
	case corev1.ProtocolSCTP:
		return nft.ProtoSCTP
	}
	return nft.ProtoTCP
}
