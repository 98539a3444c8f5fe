package generator

import (
	"fmt"
	"math/rand"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/nftpolicy/nftpolicy/selectors"
)

// Cluster is a generated cluster and the state its events need. Snapshot is what the agent would
// see; events change it in place.
type Cluster struct {
	Params   Params
	Snapshot *selectors.Snapshot
	// Target, when set, says which pods events should preferably change: e.g. the pods that are
	// peers of the node under test, whose changes reach its table. Events stay deterministic for a
	// seed as long as Target answers alike.
	Target func(*selectors.Pod) bool
	// Last is what the last Apply changed, for consumers that follow the cluster object by object.
	Last Change

	rng *rand.Rand
	// localLabels are the labels of the local pods by namespace; events never change local pods.
	localLabels map[string][]map[string]string
	flips       []flipPeer // see flipPeers
	alphabet    alphabet
	nextAddr    uint32 // the next fresh address for added or moved pods
	added       int    // pods added so far, for unique names
}

var (
	podBase   = netip.MustParseAddr("10.0.0.0")
	freshBase = netip.MustParseAddr("10.128.0.0")
)

// Generate builds a cluster. The same Params (seed included) always give a deeply equal Snapshot.
func Generate(p Params) (*Cluster, error) {
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("generating a cluster: %w", err)
	}
	c := &Cluster{
		Params:      p,
		Snapshot:    &selectors.Snapshot{Node: Node},
		rng:         rand.New(rand.NewSource(p.Seed)),
		alphabet:    p.alphabet(),
		nextAddr:    addrIndex(freshBase),
		localLabels: map[string][]map[string]string{},
	}
	for n := range p.Namespaces {
		c.Snapshot.Namespaces = append(c.Snapshot.Namespaces, selectors.Namespace{
			Name:   namespaceName(n),
			Labels: map[string]string{"team": c.teamValue(c.rng.Intn(c.alphabet.teams)), "env": []string{"prod", "dev"}[n%2]},
		})
	}
	// Local pods are every stride-th pod, so they are spread over the namespaces like the others.
	stride := 0
	if p.LocalPods > 0 {
		stride = p.Pods / p.LocalPods
	}
	for i := range p.Pods {
		node := fmt.Sprintf("node-%d", 1+i%max(1, p.Pods/110))
		if stride > 0 && i%stride == 0 && i/stride < p.LocalPods {
			node = Node
		}
		pod := c.makePod(namespaceName(i%p.Namespaces), fmt.Sprintf("pod-%06d", i), addrAt(podBase, uint32(i+1)), node)
		c.Snapshot.Pods = append(c.Snapshot.Pods, pod)
		if node == Node {
			c.localLabels[pod.Namespace] = append(c.localLabels[pod.Namespace], pod.Labels)
		}
	}
	for j := range p.Policies {
		c.Snapshot.Policies = append(c.Snapshot.Policies, c.makePolicy(j))
	}
	c.makeClusterPolicies()
	return c, nil
}

func namespaceName(n int) string { return fmt.Sprintf("ns-%04d", n) }

func (c *Cluster) teamValue(t int) string { return fmt.Sprintf("team-%d", t) }
func (c *Cluster) appValue(a int) string  { return fmt.Sprintf("app-%d", a) }

// makePod makes a running pod with random labels that declares the named ports "http" and "dns".
func (c *Cluster) makePod(namespace, name string, addr netip.Addr, node string) selectors.Pod {
	return selectors.Pod{
		Namespace: namespace,
		Name:      name,
		Labels:    map[string]string{"app": c.appValue(c.rng.Intn(c.alphabet.apps)), "tier": []string{"fe", "be", "db"}[c.rng.Intn(3)]},
		IPs:       []netip.Addr{addr},
		Node:      node,
		Phase:     corev1.PodRunning,
		Ports: []selectors.ContainerPort{
			{Name: "http", Number: int32(8080 + c.rng.Intn(3))},
			{Name: "dns", Number: 53, Protocol: corev1.ProtocolUDP},
		},
	}
}

// makePolicy makes policy j: a podSelector on "app" (or the whole namespace), RulesPerPolicy ingress
// rules, and as many egress rules every EgressEvery-th policy.
func (c *Cluster) makePolicy(j int) *networkingv1.NetworkPolicy {
	p := c.Params
	ns := namespaceName(c.rng.Intn(p.Namespaces))
	np := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("policy-%05d", j)},
		Spec: networkingv1.NetworkPolicySpec{
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
		},
	}
	if !every(p.SelectAllEvery, j) {
		np.Spec.PodSelector.MatchLabels = map[string]string{"app": c.appValue(c.rng.Intn(c.alphabet.apps))}
	}
	for range p.RulesPerPolicy {
		np.Spec.Ingress = append(np.Spec.Ingress, networkingv1.NetworkPolicyIngressRule{From: c.makePeers(), Ports: c.makePorts(false)})
	}
	if every(p.EgressEvery, j) {
		np.Spec.PolicyTypes = append(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress)
		for range p.RulesPerPolicy {
			np.Spec.Egress = append(np.Spec.Egress, networkingv1.NetworkPolicyEgressRule{To: c.makePeers(), Ports: c.makePorts(true)})
		}
	}
	return np
}

func every(n, j int) bool { return n > 0 && j%n == 0 }

// oneIn is true with probability 1/n; never when n is 0.
func (c *Cluster) oneIn(n int) bool { return n > 0 && c.rng.Intn(n) == 0 }

func (c *Cluster) makePeers() []networkingv1.NetworkPolicyPeer {
	p := c.Params
	total := p.PodSelectorPeers + p.NamespaceSelectorPeers + p.IPBlockPeers
	var peers []networkingv1.NetworkPolicyPeer
	for range p.PeersPerRule {
		w := c.rng.Intn(total)
		switch {
		case w < p.PodSelectorPeers:
			peers = append(peers, networkingv1.NetworkPolicyPeer{PodSelector: c.appSelector()})
		case w < p.PodSelectorPeers+p.NamespaceSelectorPeers:
			peer := networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{
				MatchLabels: map[string]string{"team": c.teamValue(c.rng.Intn(c.alphabet.teams))},
			}}
			if c.rng.Intn(2) == 0 {
				peer.PodSelector = c.appSelector()
			}
			peers = append(peers, peer)
		default:
			peers = append(peers, networkingv1.NetworkPolicyPeer{IPBlock: c.makeIPBlock()})
		}
	}
	return peers
}

func (c *Cluster) appSelector() *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchLabels: map[string]string{"app": c.appValue(c.rng.Intn(c.alphabet.apps))}}
}

// makeIPBlock is an external /20 minus a few /26 (half the time), or the internet minus private
// ranges.
func (c *Cluster) makeIPBlock() *networkingv1.IPBlock {
	if c.rng.Intn(2) == 0 {
		return &networkingv1.IPBlock{CIDR: "0.0.0.0/0", Except: []string{"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"}[:min(3, c.Params.ExceptsPerIPBlock+1)]}
	}
	net := c.rng.Intn(256)
	block := &networkingv1.IPBlock{CIDR: fmt.Sprintf("172.%d.%d.0/20", 16+net/16, (net%16)*16)}
	for e := range c.Params.ExceptsPerIPBlock {
		block.Except = append(block.Except, fmt.Sprintf("172.%d.%d.%d/26", 16+net/16, (net%16)*16+e, 64*c.rng.Intn(4)))
	}
	return block
}

// makePorts makes PortsPerRule ports: single TCP ports, ranges, named ports ("http"; UDP "dns").
func (c *Cluster) makePorts(egress bool) []networkingv1.NetworkPolicyPort {
	p := c.Params
	var ports []networkingv1.NetworkPolicyPort
	tcp, udp := corev1.ProtocolTCP, corev1.ProtocolUDP
	for k := range p.PortsPerRule {
		port := networkingv1.NetworkPolicyPort{Protocol: &tcp}
		switch {
		case k%2 == 0 && c.oneIn(p.NamedPortEvery):
			v := intstr.FromString("http")
			if egress && c.rng.Intn(2) == 0 {
				port.Protocol, v = &udp, intstr.FromString("dns")
			}
			port.Port = &v
		case c.oneIn(p.PortRangeEvery):
			first := int32(9000 + 100*c.rng.Intn(10))
			v, end := intstr.FromInt32(first), first+99
			port.Port, port.EndPort = &v, &end
		default:
			v := intstr.FromInt32(int32([]int{80, 443, 5432, 6379, 8080, 8443}[c.rng.Intn(6)]))
			port.Port = &v
		}
		ports = append(ports, port)
	}
	return ports
}

// addrIndex and addrAt convert between IPv4 addresses and offsets from a base.
func addrIndex(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func addrAt(base netip.Addr, offset uint32) netip.Addr {
	v := addrIndex(base) + offset
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}
