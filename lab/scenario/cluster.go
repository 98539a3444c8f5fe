package scenario

import (
	"context"
	"net/netip"
	"slices"

	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"
)

// ClusterPolicyCluster is a Cluster that can hold ClusterNetworkPolicies (format v1.1). The runner
// runs a file that applies or deletes one only on a cluster that implements it and enforces them.
type ClusterPolicyCluster interface {
	Cluster
	// EnforcesClusterNetworkPolicy reports whether the cluster's dataplane enforces them, and why
	// not when it does not.
	EnforcesClusterNetworkPolicy() (ok bool, reason string)
	// ApplyClusterPolicies creates each policy, or replaces the whole object when the name exists.
	ApplyClusterPolicies(ctx context.Context, policies []*v1beta1.ClusterNetworkPolicy) error
	// DeleteClusterPolicies deletes the named ClusterNetworkPolicies.
	DeleteClusterPolicies(ctx context.Context, names []string) error
}

// Cluster is the lab a scenario runs against. The runner calls it from several goroutines at once
// (Probe in particular), so implementations must be safe for concurrent use.
type Cluster interface {
	// Setup creates the namespaces, pods and Services of c, with their labels and served ports, and
	// every pod's own Service (see ProbeService), starting from a
	// state where none of the scenario's namespaces, policies or label changes remain (it removes
	// leftovers of an interrupted run). It returns once every pod has an IP and serves its ports, and
	// its own Service has its ready endpoint.
	Setup(ctx context.Context, c ClusterSpec) error
	// PodIP is the primary IP of family of pod ("namespace/pod").
	PodIP(pod string, family Family) (netip.Addr, error)
	// ApplyPolicies creates each policy, or replaces the whole object when namespace/name exists.
	ApplyPolicies(ctx context.Context, policies []*networkingv1.NetworkPolicy) error
	// DeletePolicies deletes the policies named "namespace/name".
	DeletePolicies(ctx context.Context, refs []string) error
	// Relabel makes the labels of the namespace or pod exactly r.Labels; a namespace keeps
	// kubernetes.io/metadata.name.
	Relabel(ctx context.Context, r Relabel) error
	// Probe opens a new connection from src's network namespace to dst's pod IP of family and
	// reports whether it went through: for TCP the connect completed, for UDP (and SCTP) the
	// server's reply arrived. An error means the probe could not be run, not that it was blocked.
	Probe(ctx context.Context, src, dst string, port int, protocol string, family Family) (bool, error)
	// ProbeService is Probe through dst's own ClusterIP Service (PodServiceName, selecting dst alone
	// through PodServiceLabel): a new connection from src's network namespace to the Service's
	// ClusterIP of family on its port for port and protocol. A Service without a ready endpoint for
	// that port and family is an error ("no endpoints"), never a blocked probe.
	ProbeService(ctx context.Context, src, dst string, port int, protocol string, family Family) (bool, error)
	// SupportsProtocol reports whether the lab can probe protocol, and why not when it cannot
	// (e.g. SCTP on a kernel without SCTP sockets).
	SupportsProtocol(protocol string) (ok bool, reason string)
	// Teardown removes everything Setup and the steps created.
	Teardown(ctx context.Context) error
}

// defaultNamespaces and defaultPods are the upstream conformance model the format defaults to.
var (
	defaultNamespaces = []string{"x", "y", "z"}
	defaultPods       = []string{"a", "b", "c"}
	defaultPorts      = []Port{
		{Name: "serve-80-tcp", Port: 80, Protocol: ProtocolTCP},
		{Name: "serve-81-tcp", Port: 81, Protocol: ProtocolTCP},
		{Name: "serve-80-udp", Port: 80, Protocol: ProtocolUDP},
		{Name: "serve-81-udp", Port: 81, Protocol: ProtocolUDP},
	}
)

// DefaultCluster is the cluster of a file without a cluster key: namespaces x, y and z labelled
// ns=<name>, each with pods a, b and c labelled pod=<name>, every pod serving TCP and UDP on ports
// 80 and 81 under the port names serve-<port>-<tcp|udp>.
func DefaultCluster() *ClusterSpec {
	c := &ClusterSpec{}
	for _, ns := range defaultNamespaces {
		namespace := Namespace{Name: ns, Labels: map[string]string{"ns": ns}}
		for _, pod := range defaultPods {
			namespace.Pods = append(namespace.Pods, Pod{
				Name:   pod,
				Labels: map[string]string{"pod": pod},
				Ports:  slices.Clone(defaultPorts),
			})
		}
		c.Namespaces = append(c.Namespaces, namespace)
	}
	return c
}

// PodRefs lists every pod as "namespace/pod", in the order of the file.
func (c *ClusterSpec) PodRefs() []string {
	var refs []string
	for _, ns := range c.Namespaces {
		for _, pod := range ns.Pods {
			refs = append(refs, ns.Name+"/"+pod.Name)
		}
	}
	return refs
}

// Pod finds a pod by "namespace/pod".
func (c *ClusterSpec) Pod(ref string) (*Pod, bool) {
	nsName, podName, err := splitRef(ref)
	if err != nil {
		return nil, false
	}
	ns, ok := c.Namespace(nsName)
	if !ok {
		return nil, false
	}
	for i := range ns.Pods {
		if ns.Pods[i].Name == podName {
			return &ns.Pods[i], true
		}
	}
	return nil, false
}

// Namespace finds a namespace by name.
func (c *ClusterSpec) Namespace(name string) (*Namespace, bool) {
	for i := range c.Namespaces {
		if c.Namespaces[i].Name == name {
			return &c.Namespaces[i], true
		}
	}
	return nil, false
}

// Serves reports whether pod serves port over protocol.
func (p *Pod) Serves(port int, protocol string) bool {
	return slices.ContainsFunc(p.Ports, func(pp Port) bool { return pp.Port == port && pp.Protocol == protocol })
}
