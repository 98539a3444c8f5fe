package e2e

// IP plans of the oracle cluster. The pod at position p (0-based) of the namespace at position n of
// the cluster, both in file order, gets one address per family. Two plans exist so that a scenario
// whose expectations silently depend on how the lab happens to number pods fails here:
//
//	namespace-major   IPv4 198.18.n.(10+p)    IPv6 fd18::n:(10+p)   (x/a = 198.18.0.10, y/b = 198.18.1.11)
//	pod-major         IPv4 198.19.p.(10+n)    IPv6 fd19::p:(10+n)   (x/a = 198.19.0.10, y/b = 198.19.1.11)
//
// Every address of both plans lies in 198.18.0.0/15 and fd00::/8, so the "all pod IPs fall in one
// /4" promise of the scenario format holds: 192.0.0.0/4 and f000::/4.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"sync"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"

	"github.com/nftpolicy/nftpolicy/lab/scenario"
	"github.com/nftpolicy/nftpolicy/selectors"
	"github.com/nftpolicy/nftpolicy/selectors/oracle"
)

var _ scenario.ClusterPolicyCluster = (*oracleCluster)(nil)

// oracleIPPlan gives the addresses of the pod at podIndex of the namespace at nsIndex.
type oracleIPPlan struct {
	name string
	ipv4 func(nsIndex, podIndex int) netip.Addr
	ipv6 func(nsIndex, podIndex int) netip.Addr
}

var oracleIPPlans = []oracleIPPlan{
	{
		name: "namespace-major",
		ipv4: func(n, p int) netip.Addr { return netip.AddrFrom4([4]byte{198, 18, byte(n), byte(10 + p)}) },
		ipv6: func(n, p int) netip.Addr { return netip.MustParseAddr(fmt.Sprintf("fd18::%x:%x", n, 10+p)) },
	},
	{
		name: "pod-major",
		ipv4: func(n, p int) netip.Addr { return netip.AddrFrom4([4]byte{198, 19, byte(p), byte(10 + n)}) },
		ipv6: func(n, p int) netip.Addr { return netip.MustParseAddr(fmt.Sprintf("fd19::%x:%x", p, 10+n)) },
	},
}

// oracleNodes is how many nodes the pods are spread over, round-robin, as in the lab.
const oracleNodes = 2

// oracleCluster is an in-memory lab whose probes are answered by oracle.Allows, our deliberately
// naive reading of the NetworkPolicy API, over a snapshot kept up to date by the scenario's steps.
// Changes take effect at once, so a run never waits for convergence unless a file is wrong.
type oracleCluster struct {
	plan oracleIPPlan

	mu       sync.Mutex
	spec     scenario.ClusterSpec
	ips      map[scenario.Family]map[string]netip.Addr
	pods     map[string]*selectors.Pod // by "namespace/pod"; labels change with Relabel
	nsLabels map[string]map[string]string
	policies map[string]*networkingv1.NetworkPolicy // by "namespace/name"
	// clusterPolicies are the ClusterNetworkPolicies, by name.
	clusterPolicies map[string]*v1beta1.ClusterNetworkPolicy
}

func newOracleCluster(plan oracleIPPlan) *oracleCluster {
	return &oracleCluster{plan: plan}
}

func (o *oracleCluster) Setup(_ context.Context, c scenario.ClusterSpec) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.spec = c
	o.ips = map[scenario.Family]map[string]netip.Addr{scenario.IPv4: {}, scenario.IPv6: {}}
	o.pods = map[string]*selectors.Pod{}
	o.nsLabels = map[string]map[string]string{}
	o.policies = map[string]*networkingv1.NetworkPolicy{}
	o.clusterPolicies = map[string]*v1beta1.ClusterNetworkPolicy{}
	podCount := 0
	for n, ns := range c.Namespaces {
		o.nsLabels[ns.Name] = oracleNamespaceLabels(ns.Name, ns.Labels)
		for p, pod := range ns.Pods {
			ref := ns.Name + "/" + pod.Name
			v4, v6 := o.plan.ipv4(n, p), o.plan.ipv6(n, p)
			o.ips[scenario.IPv4][ref], o.ips[scenario.IPv6][ref] = v4, v6
			o.pods[ref] = &selectors.Pod{
				Namespace: ns.Name,
				Name:      pod.Name,
				Labels:    maps.Clone(pod.Labels),
				IPs:       []netip.Addr{v4, v6},
				Node:      fmt.Sprintf("node-%d", podCount%oracleNodes),
				Phase:     corev1.PodRunning,
				Ports:     oracleContainerPorts(pod.Ports),
			}
			podCount++
		}
	}
	return nil
}

// oracleNamespaceLabels adds kubernetes.io/metadata.name, which the API server always sets.
func oracleNamespaceLabels(name string, l map[string]string) map[string]string {
	out := maps.Clone(l)
	if out == nil {
		out = map[string]string{}
	}
	out[corev1.LabelMetadataName] = name
	return out
}

func oracleContainerPorts(ports []scenario.Port) []selectors.ContainerPort {
	out := make([]selectors.ContainerPort, 0, len(ports))
	for _, p := range ports {
		out = append(out, selectors.ContainerPort{Name: p.Name, Number: int32(p.Port), Protocol: corev1.Protocol(p.Protocol)})
	}
	return out
}

func (o *oracleCluster) PodIP(pod string, family scenario.Family) (netip.Addr, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	ip, ok := o.ips[family][pod]
	if !ok {
		return netip.Addr{}, fmt.Errorf("no pod %s with an %s address", pod, family)
	}
	return ip, nil
}

// ApplyPolicies stores each policy the way the API server would: it refuses the whole batch when
// one policy is invalid, and otherwise creates or replaces each object.
func (o *oracleCluster) ApplyPolicies(_ context.Context, policies []*networkingv1.NetworkPolicy) error {
	var errs []error
	for _, p := range policies {
		if err := oracleValidatePolicy(p); err != nil {
			errs = append(errs, fmt.Errorf("NetworkPolicy %s/%s: %w", p.Namespace, p.Name, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, p := range policies {
		if _, ok := o.nsLabels[p.Namespace]; !ok {
			return fmt.Errorf("NetworkPolicy %s/%s: namespace %q does not exist", p.Namespace, p.Name, p.Namespace)
		}
		o.policies[p.Namespace+"/"+p.Name] = p.DeepCopy()
	}
	return nil
}

// DeletePolicies fails on a policy that does not exist, as deleting through the API server would:
// a scenario that deletes the wrong name would otherwise pass silently.
func (o *oracleCluster) DeletePolicies(_ context.Context, refs []string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, ref := range refs {
		if _, ok := o.policies[ref]; !ok {
			return fmt.Errorf("NetworkPolicy %s not found", ref)
		}
		delete(o.policies, ref)
	}
	return nil
}

func (o *oracleCluster) Relabel(_ context.Context, r scenario.Relabel) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	switch r.Kind {
	case scenario.KindNamespace:
		if _, ok := o.nsLabels[r.Name]; !ok {
			return fmt.Errorf("namespace %s not found", r.Name)
		}
		o.nsLabels[r.Name] = oracleNamespaceLabels(r.Name, r.Labels)
	case scenario.KindPod:
		pod, ok := o.pods[r.Name]
		if !ok {
			return fmt.Errorf("pod %s not found", r.Name)
		}
		pod.Labels = maps.Clone(r.Labels)
	default:
		return fmt.Errorf("cannot relabel a %q", r.Kind)
	}
	return nil
}

// Probe asks the oracle whether a new connection from src to dst's address of family would pass.
// A destination that does not serve the port refuses the connection, as a real server would.
func (o *oracleCluster) Probe(_ context.Context, src, dst string, port int, protocol string, family scenario.Family) (bool, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	srcIP, srcOK := o.ips[family][src]
	dstIP, dstOK := o.ips[family][dst]
	if !srcOK || !dstOK {
		return false, fmt.Errorf("probing %s -> %s: unknown pod", src, dst)
	}
	if dstPod, _ := o.spec.Pod(dst); !dstPod.Serves(port, protocol) {
		return false, nil
	}
	snapshot := o.snapshotLocked()
	return oracle.Allows(snapshot, oracle.Connection{
		Src:      srcIP,
		Dst:      dstIP,
		Protocol: corev1.Protocol(protocol),
		Port:     uint16(port),
	}), nil
}

// ProbeService is Probe: a policy judges the backend pod and its target port, never the ClusterIP,
// and each pod's own Service forwards its port to the same port of the pod.
func (o *oracleCluster) ProbeService(ctx context.Context, src, dst string, port int, protocol string, family scenario.Family) (bool, error) {
	return o.Probe(ctx, src, dst, port, protocol, family)
}

// snapshotLocked copies the current state into the form selectors reads. The oracle only reads it.
func (o *oracleCluster) snapshotLocked() *selectors.Snapshot {
	s := &selectors.Snapshot{Node: "node-0"}
	for _, ref := range o.spec.PodRefs() {
		s.Pods = append(s.Pods, *o.pods[ref])
	}
	for _, ns := range o.spec.Namespaces {
		s.Namespaces = append(s.Namespaces, selectors.Namespace{Name: ns.Name, Labels: o.nsLabels[ns.Name]})
	}
	for _, p := range o.policies {
		s.Policies = append(s.Policies, p)
	}
	for _, p := range o.clusterPolicies {
		s.ClusterPolicies = append(s.ClusterPolicies, p)
	}
	return s
}

// SupportsProtocol accepts SCTP too: the oracle evaluates it without any socket.
func (o *oracleCluster) SupportsProtocol(protocol string) (bool, string) {
	switch protocol {
	case scenario.ProtocolTCP, scenario.ProtocolUDP, scenario.ProtocolSCTP:
		return true, ""
	}
	return false, "the oracle cluster only knows TCP, UDP and SCTP"
}

func (o *oracleCluster) Teardown(context.Context) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.policies = map[string]*networkingv1.NetworkPolicy{}
	o.clusterPolicies = map[string]*v1beta1.ClusterNetworkPolicy{}
	return nil
}

// EnforcesClusterNetworkPolicy: the oracle evaluates them.
func (o *oracleCluster) EnforcesClusterNetworkPolicy() (bool, string) { return true, "" }

// ApplyClusterPolicies creates or replaces each policy. The API server's CRD validation is not
// repeated here: a file the lab's API server would refuse fails there.
func (o *oracleCluster) ApplyClusterPolicies(_ context.Context, policies []*v1beta1.ClusterNetworkPolicy) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, p := range policies {
		o.clusterPolicies[p.Name] = p.DeepCopy()
	}
	return nil
}

// DeleteClusterPolicies fails on a policy that does not exist, as the API server would.
func (o *oracleCluster) DeleteClusterPolicies(_ context.Context, names []string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, name := range names {
		if _, ok := o.clusterPolicies[name]; !ok {
			return fmt.Errorf("ClusterNetworkPolicy %s not found", name)
		}
		delete(o.clusterPolicies, name)
	}
	return nil
}
