// Package nfttest holds the models that the tests of package nft and of its kernel package share:
// builders of local pods and rules, the guestbook demo as resolved for one node, a series of changes
// to it, and a generated node for benchmarks. Only tests import it.
package nfttest

import (
	"fmt"
	"net/netip"

	corev1 "k8s.io/api/core/v1"

	"github.com/nftpolicy/nftpolicy/selectors"
)

// IP plan of the nft package tests (documentation and benchmarking ranges only):
//
//	198.18.0.0/24   pods on this node ("n1"); host interfaces are named after the pod
//	198.18.1.0/24   pods on another node, reached through the fabric interface "fabric0"
//	198.18.0.1      this node's own address
//	fd18::/64       IPv6 pod addresses (dual-stack pods keep the IPv4 host part: 198.18.0.10 -> fd18::10)
//	203.0.113.0/24  addresses outside the cluster
const (
	RedisIP        = "198.18.0.10"
	RedisIPv6      = "fd18::10"
	GuestbookIP    = "198.18.0.20"
	RemoteGBIP     = "198.18.1.21"
	BusyboxIP      = "198.18.1.30"
	NodeIP         = "198.18.0.1"
	ExternalDNS    = "203.0.113.53"
	FabricIface    = "fabric0"
	RedisIface     = "veth-redis"
	GuestbookIface = "veth-gb1"
)

// Addr parses an address of the IP plan.
func Addr(s string) netip.Addr { return netip.MustParseAddr(s) }

// Single returns one range per address.
func Single(ips ...string) []selectors.AddrRange {
	out := make([]selectors.AddrRange, len(ips))
	for i, ip := range ips {
		out[i] = selectors.AddrRange{From: Addr(ip), To: Addr(ip)}
	}
	return out
}

// PodTweak changes a local pod being built.
type PodTweak func(*selectors.LocalPod)

// MakeLocalPod builds a local pod of namespace ns.
func MakeLocalPod(ns, name string, tweaks ...PodTweak) selectors.LocalPod {
	p := selectors.LocalPod{Namespace: ns, Name: name}
	for _, t := range tweaks {
		t(&p)
	}
	return p
}

// WithIPs gives the pod addresses.
func WithIPs(ips ...string) PodTweak {
	return func(p *selectors.LocalPod) {
		for _, ip := range ips {
			p.IPs = append(p.IPs, Addr(ip))
		}
	}
}

// IsolatedIngress isolates the pod for ingress by one policy of its namespace with rules.
func IsolatedIngress(policy string, rules ...selectors.Rule) PodTweak {
	return func(p *selectors.LocalPod) { p.Ingress = Isolation(p.Namespace, policy, rules) }
}

// IsolatedEgress isolates the pod for egress by one policy of its namespace with rules.
func IsolatedEgress(policy string, rules ...selectors.Rule) PodTweak {
	return func(p *selectors.LocalPod) { p.Egress = Isolation(p.Namespace, policy, rules) }
}

// Isolation is what one policy of namespace ns with rules makes of a pod it selects.
func Isolation(ns, policy string, rules []selectors.Rule) *selectors.Isolation {
	ref := selectors.PolicyRef{Namespace: ns, Name: policy}
	for i := range rules {
		rules[i].Policy = ref
	}
	return &selectors.Isolation{Policies: []selectors.PolicyRef{ref}, Rules: rules}
}

// RuleTweak changes a rule being built.
type RuleTweak func(*selectors.Rule)

// MakeRule builds the rule at index of its policy: any peer, all ports, unless tweaked.
func MakeRule(index int, tweaks ...RuleTweak) selectors.Rule {
	r := selectors.Rule{Index: index, AnyPeer: true, AllPorts: true}
	for _, t := range tweaks {
		t(&r)
	}
	return r
}

// FromPeers limits the rule to the peers of AddressSet id.
func FromPeers(id string) RuleTweak {
	return func(r *selectors.Rule) { r.AnyPeer = false; r.Peers = id }
}

// OnPorts limits the rule to ports.
func OnPorts(ports ...selectors.PortRange) RuleTweak {
	return func(r *selectors.Rule) { r.AllPorts = false; r.Ports = append(r.Ports, ports...) }
}

// OnNamedPorts limits the rule to the named ports of ServiceSets ids.
func OnNamedPorts(ids ...string) RuleTweak {
	return func(r *selectors.Rule) { r.AllPorts = false; r.NamedPorts = append(r.NamedPorts, ids...) }
}

// TCP is one TCP port.
func TCP(port uint16) selectors.PortRange {
	return selectors.PortRange{Protocol: corev1.ProtocolTCP, First: port, Last: port}
}

// UDP is one UDP port.
func UDP(port uint16) selectors.PortRange {
	return selectors.PortRange{Protocol: corev1.ProtocolUDP, First: port, Last: port}
}

// GuestbookModel is the guestbook demo as resolved for node n1, with a few extra allowances so that
// every kind of rule appears:
//   - redis-master (dual-stack) accepts anything from guestbook pods (peers "guestbook");
//   - guestbook-1 may reach redis on TCP 6379, DNS anywhere on UDP 53, other guestbook pods on
//     their named port http-server (service set "http"), and 203.0.113.0/24 except 203.0.113.128/25
//     on TCP 443 and 8443 (an ipBlock: peers "external"; two ports: a port set); nobody may connect
//     to it.
func GuestbookModel() *selectors.Model {
	return &selectors.Model{
		Node: "n1",
		LocalPods: []selectors.LocalPod{
			MakeLocalPod("default", "guestbook-1", WithIPs(GuestbookIP),
				IsolatedEgress("guestbook-egress",
					MakeRule(0, FromPeers("redis"), OnPorts(TCP(6379))),
					MakeRule(1, OnPorts(UDP(53))),
					MakeRule(2, FromPeers("guestbook"), OnNamedPorts("http")),
					MakeRule(3, FromPeers("external"), OnPorts(TCP(443), TCP(8443)))),
				IsolatedIngress("deny-guestbook-ingress")),
			MakeLocalPod("default", "redis-master", WithIPs(RedisIP, RedisIPv6),
				IsolatedIngress("redis-policy", MakeRule(0, FromPeers("guestbook")))),
		},
		AddressSets: []selectors.AddressSet{
			{ID: "external", Description: "ipBlock 203.0.113.0/24 except 203.0.113.128/25", HasIPBlocks: true,
				Ranges: []selectors.AddrRange{{From: Addr("203.0.113.0"), To: Addr("203.0.113.127")}}},
			{ID: "guestbook", Description: "default: pods app=guestbook", Ranges: Single(GuestbookIP, RemoteGBIP)},
			{ID: "redis", Description: "default: pods app=redis", Ranges: Single(RedisIP, RedisIPv6)},
		},
		ServiceSets: []selectors.ServiceSet{{
			ID: "http", Description: "default: pods app=guestbook, port http-server/TCP",
			Services: []selectors.Service{
				{Addr: Addr(GuestbookIP), Protocol: corev1.ProtocolTCP, Port: 3000},
				{Addr: Addr(RemoteGBIP), Protocol: corev1.ProtocolTCP, Port: 3000},
			},
		}},
	}
}

// GuestbookAuditModel is GuestbookModel with two audited policies: redis-trial would admit TCP 6379
// from anyone to redis-master (whose enforced policy admits only guestbook pods), and
// redis-egress-trial, the only policy selecting redis-master for egress, would admit only guestbook
// pods on TCP 3000.
func GuestbookAuditModel() *selectors.Model {
	m := GuestbookModel()
	redis := &m.LocalPods[1]
	redis.AuditIngress = Isolation("default", "redis-trial", []selectors.Rule{MakeRule(0, OnPorts(TCP(6379)))})
	redis.AuditEgress = Isolation("default", "redis-egress-trial", []selectors.Rule{MakeRule(0, FromPeers("guestbook"), OnPorts(TCP(3000)))})
	return m
}

// GuestbookInterfaces are the host interfaces of GuestbookModel's local pods.
func GuestbookInterfaces() map[netip.Addr]string {
	return map[netip.Addr]string{
		Addr(RedisIP):     RedisIface,
		Addr(RedisIPv6):   RedisIface,
		Addr(GuestbookIP): GuestbookIface,
	}
}

// EmptyModel is node n1 with nothing on it.
func EmptyModel() *selectors.Model { return &selectors.Model{Node: "n1"} }

// ModelChange is a named change of a model and of its local pods' interfaces, made in place.
type ModelChange struct {
	Name   string
	Change func(m *selectors.Model, ifaces map[netip.Addr]string)
}

// ApplierSequence is a series of changes of GuestbookModel, each of which must be applied
// incrementally.
var ApplierSequence = []ModelChange{
	{"a remote guestbook pod joins the peer set", func(m *selectors.Model, _ map[netip.Addr]string) {
		m.AddressSets[1].Ranges = append(m.AddressSets[1].Ranges, Single("198.18.1.22")...)
	}},
	{"redis-master's IPv4 address changes", func(m *selectors.Model, ifaces map[netip.Addr]string) {
		m.LocalPods[1].IPs[0] = Addr("198.18.0.11")
		m.AddressSets[2].Ranges[0] = Single("198.18.0.11")[0]
		delete(ifaces, Addr(RedisIP))
		ifaces[Addr("198.18.0.11")] = RedisIface
	}},
	{"guestbook-1's ingress policy is deleted", func(m *selectors.Model, _ map[netip.Addr]string) {
		m.LocalPods[0].Ingress = nil
	}},
	{"redis-policy gains a port restriction", func(m *selectors.Model, _ map[netip.Addr]string) {
		m.LocalPods[1].Ingress.Rules[0].AllPorts = false
		m.LocalPods[1].Ingress.Rules[0].Ports = []selectors.PortRange{TCP(6379)}
	}},
	{"redis-policy admits a second port: the rule matches a new port set", func(m *selectors.Model, _ map[netip.Addr]string) {
		m.LocalPods[1].Ingress.Rules[0].Ports = []selectors.PortRange{TCP(6379), TCP(16379)}
	}},
	{"redis-policy's second port changes: its port set is replaced", func(m *selectors.Model, _ map[netip.Addr]string) {
		m.LocalPods[1].Ingress.Rules[0].Ports = []selectors.PortRange{TCP(6379), {Protocol: TCP(0).Protocol, First: 26379, Last: 26380}}
	}},
	{"guestbook's egress policy is deleted: its peer, service and port sets go too", func(m *selectors.Model, _ map[netip.Addr]string) {
		m.LocalPods[0].Egress = nil
		m.AddressSets = m.AddressSets[1:2]
		m.ServiceSets = nil
	}},
}

// BenchModel is a node with 110 local pods in a cluster of clusterPods pods: every local pod is
// isolated for ingress by its own policy admitting one of ten peer groups, each holding a tenth of the
// cluster's pods (addresses 198.18.0.0/15 with stride 2, so no two merge into a range).
func BenchModel(clusterPods int) (*selectors.Model, map[netip.Addr]string) {
	const localPods, groups = 110, 10
	m := &selectors.Model{Node: "n1"}
	ifaces := map[netip.Addr]string{}
	ranges := make([][]selectors.AddrRange, groups)
	for i := 0; i < clusterPods; i++ {
		ip := BenchAddr(i)
		ranges[i%groups] = append(ranges[i%groups], selectors.AddrRange{From: ip, To: ip})
		if i < localPods {
			name := fmt.Sprintf("pod-%05d", i)
			m.LocalPods = append(m.LocalPods, MakeLocalPod("bench", name, func(p *selectors.LocalPod) { p.IPs = []netip.Addr{ip} },
				IsolatedIngress("policy-"+name, MakeRule(0, FromPeers(fmt.Sprintf("group-%d", i%groups)), OnPorts(TCP(80), UDP(53))))))
			ifaces[ip] = fmt.Sprintf("lab%d", i)
		}
	}
	for g := range ranges {
		m.AddressSets = append(m.AddressSets, selectors.AddressSet{ID: fmt.Sprintf("group-%d", g), Ranges: ranges[g]})
	}
	return m, ifaces
}

// BenchAddr is the address of cluster pod i of BenchModel.
func BenchAddr(i int) netip.Addr {
	n := 2 * i
	return netip.AddrFrom4([4]byte{198, 18 + byte(n>>16), byte(n >> 8), byte(n)})
}

// MovePod changes the address of local pod 0 between two spare addresses: the smallest real change.
func MovePod(m *selectors.Model, ifaces map[netip.Addr]string, to netip.Addr) {
	p := &m.LocalPods[0]
	old := p.IPs[0]
	p.IPs = []netip.Addr{to}
	ifaces[to] = ifaces[old]
	delete(ifaces, old)
	for i, r := range m.AddressSets[0].Ranges {
		if r.From == old {
			m.AddressSets[0].Ranges[i] = selectors.AddrRange{From: to, To: to}
		}
	}
}

// GuestbookClusterModel is GuestbookModel with ClusterNetworkPolicy rules, so that every tier shape
// appears:
//   - redis-master (dual-stack, isolated by a NetworkPolicy) has an Admin ingress list: Pass from
//     guestbook pods, Deny TCP 22 and UDP 5000-5100 from anyone in the cluster (peers "cluster"), and a
//     failed-closed Deny of everything;
//   - guestbook-1 has the Admin egress list Accept of the named port http-server (service set
//     "http") to guestbook pods, and a Baseline ingress list that its NetworkPolicy overrides;
//   - idle-1 (198.18.0.40), selected by no NetworkPolicy, has the same Baseline ingress list
//     (Deny TCP 8000-8080 and 9000 from the cluster) and an Admin egress Deny of 203.0.113.0/24.
func GuestbookClusterModel() *selectors.Model {
	m := GuestbookModel()
	baseline := []selectors.ClusterRule{{Policy: "baseline", Priority: 1, Index: 0, Action: selectors.Deny, Peers: "cluster",
		Ports: []selectors.PortRange{{Protocol: corev1.ProtocolTCP, First: 8000, Last: 8080}, TCP(9000)}}}
	m.LocalPods[0].ClusterEgress = &selectors.ClusterRules{Admin: []selectors.ClusterRule{
		{Policy: "web", Priority: 5, Index: 0, Action: selectors.Accept, Peers: "guestbook", NamedPorts: []string{"http"}},
	}}
	m.LocalPods[0].ClusterIngress = &selectors.ClusterRules{Baseline: baseline}
	m.LocalPods[1].ClusterIngress = &selectors.ClusterRules{Admin: []selectors.ClusterRule{
		{Policy: "guard", Priority: 1, Index: 0, Action: selectors.Pass, Peers: "guestbook", AllPorts: true},
		{Policy: "guard", Priority: 1, Index: 1, Action: selectors.Deny, Peers: "cluster", Ports: []selectors.PortRange{TCP(22), {Protocol: corev1.ProtocolUDP, First: 5000, Last: 5100}}},
		{Policy: "broken", Priority: 2, Index: 0, Action: selectors.Deny, AnyPeer: true, AllPorts: true},
	}}
	idle := MakeLocalPod("default", "idle-1", WithIPs("198.18.0.40"))
	idle.ClusterIngress = &selectors.ClusterRules{Baseline: baseline}
	idle.ClusterEgress = &selectors.ClusterRules{Admin: []selectors.ClusterRule{
		{Policy: "no-external", Priority: 3, Index: 0, Action: selectors.Deny, Peers: "world", AllPorts: true},
	}}
	m.LocalPods = append(m.LocalPods, idle)
	m.AddressSets = append([]selectors.AddressSet{{ID: "cluster", Description: "namespaces={} pods={}",
		Ranges: []selectors.AddrRange{{From: Addr("198.18.0.0"), To: Addr("198.18.1.255")}, {From: Addr("fd18::"), To: Addr("fd18::ffff")}}}},
		m.AddressSets...)
	m.AddressSets = append(m.AddressSets, selectors.AddressSet{ID: "world", Description: "ipBlock=203.0.113.0/24", HasIPBlocks: true,
		Ranges: []selectors.AddrRange{{From: Addr("203.0.113.0"), To: Addr("203.0.113.255")}}})
	return m
}
