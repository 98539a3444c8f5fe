package kernel

import (
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/nftpolicy/nftpolicy/nft"
	"github.com/nftpolicy/nftpolicy/selectors"
)

// Fixtures shared with the nft package's tests, of which these are copies.
//
// IP plan of the nft package tests (documentation and benchmarking ranges only):
//
//	198.18.0.0/24   pods on this node ("n1"); host interfaces are named after the pod
//	198.18.1.0/24   pods on another node, reached through the fabric interface "fabric0"
//	198.18.0.1      this node's own address
//	fd18::/64       IPv6 pod addresses (dual-stack pods keep the IPv4 host part: 198.18.0.10 -> fd18::10)
//	203.0.113.0/24  addresses outside the cluster
const (
	redisIP      = "198.18.0.10"
	redisIPv6    = "fd18::10"
	guestbookIP  = "198.18.0.20"
	remoteGBIP   = "198.18.1.21"
	busyboxIP    = "198.18.1.30"
	nodeIP       = "198.18.0.1"
	externalDNS  = "203.0.113.53"
	fabricIface  = "fabric0"
	redisIface   = "veth-redis"
	guestbkIface = "veth-gb1"
)

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

func single(ips ...string) []selectors.AddrRange {
	out := make([]selectors.AddrRange, len(ips))
	for i, ip := range ips {
		out[i] = selectors.AddrRange{From: addr(ip), To: addr(ip)}
	}
	return out
}

type podTweak func(*selectors.LocalPod)

func makeLocalPod(ns, name string, tweaks ...podTweak) selectors.LocalPod {
	p := selectors.LocalPod{Namespace: ns, Name: name}
	for _, t := range tweaks {
		t(&p)
	}
	return p
}

func withIPs(ips ...string) podTweak {
	return func(p *selectors.LocalPod) {
		for _, ip := range ips {
			p.IPs = append(p.IPs, addr(ip))
		}
	}
}

func isolatedIngress(policy string, rules ...selectors.Rule) podTweak {
	return func(p *selectors.LocalPod) { p.Ingress = isolation(p.Namespace, policy, rules) }
}

func isolatedEgress(policy string, rules ...selectors.Rule) podTweak {
	return func(p *selectors.LocalPod) { p.Egress = isolation(p.Namespace, policy, rules) }
}

func isolation(ns, policy string, rules []selectors.Rule) *selectors.Isolation {
	ref := selectors.PolicyRef{Namespace: ns, Name: policy}
	for i := range rules {
		rules[i].Policy = ref
	}
	return &selectors.Isolation{Policies: []selectors.PolicyRef{ref}, Rules: rules}
}

type ruleTweak func(*selectors.Rule)

func makeRule(index int, tweaks ...ruleTweak) selectors.Rule {
	r := selectors.Rule{Index: index, AnyPeer: true, AllPorts: true}
	for _, t := range tweaks {
		t(&r)
	}
	return r
}

func fromPeers(id string) ruleTweak {
	return func(r *selectors.Rule) { r.AnyPeer = false; r.Peers = id }
}

func onPorts(ports ...selectors.PortRange) ruleTweak {
	return func(r *selectors.Rule) { r.AllPorts = false; r.Ports = append(r.Ports, ports...) }
}

func onNamedPorts(ids ...string) ruleTweak {
	return func(r *selectors.Rule) { r.AllPorts = false; r.NamedPorts = append(r.NamedPorts, ids...) }
}

func tcp(port uint16) selectors.PortRange {
	return selectors.PortRange{Protocol: corev1.ProtocolTCP, First: port, Last: port}
}

func udp(port uint16) selectors.PortRange {
	return selectors.PortRange{Protocol: corev1.ProtocolUDP, First: port, Last: port}
}

// guestbookModel is the guestbook demo as resolved for node n1, with a few extra allowances so that
// every kind of rule appears:
//   - redis-master (dual-stack) accepts anything from guestbook pods (peers "guestbook");
//   - guestbook-1 may reach redis on TCP 6379, DNS anywhere on UDP 53, other guestbook pods on
//     their named port http-server (service set "http"), and 203.0.113.0/24 except 203.0.113.128/25
//     on TCP 443 and 8443 (an ipBlock: peers "external"; two ports: a port set); nobody may connect
//     to it.
func guestbookModel() *selectors.Model {
	return &selectors.Model{
		Node: "n1",
		LocalPods: []selectors.LocalPod{
			makeLocalPod("default", "guestbook-1", withIPs(guestbookIP),
				isolatedEgress("guestbook-egress",
					makeRule(0, fromPeers("redis"), onPorts(tcp(6379))),
					makeRule(1, onPorts(udp(53))),
					makeRule(2, fromPeers("guestbook"), onNamedPorts("http")),
					makeRule(3, fromPeers("external"), onPorts(tcp(443), tcp(8443)))),
				isolatedIngress("deny-guestbook-ingress")),
			makeLocalPod("default", "redis-master", withIPs(redisIP, redisIPv6),
				isolatedIngress("redis-policy", makeRule(0, fromPeers("guestbook")))),
		},
		AddressSets: []selectors.AddressSet{
			{ID: "external", Description: "ipBlock 203.0.113.0/24 except 203.0.113.128/25", HasIPBlocks: true,
				Ranges: []selectors.AddrRange{{From: addr("203.0.113.0"), To: addr("203.0.113.127")}}},
			{ID: "guestbook", Description: "default: pods app=guestbook", Ranges: single(guestbookIP, remoteGBIP)},
			{ID: "redis", Description: "default: pods app=redis", Ranges: single(redisIP, redisIPv6)},
		},
		ServiceSets: []selectors.ServiceSet{{
			ID: "http", Description: "default: pods app=guestbook, port http-server/TCP",
			Services: []selectors.Service{
				{Addr: addr(guestbookIP), Protocol: corev1.ProtocolTCP, Port: 3000},
				{Addr: addr(remoteGBIP), Protocol: corev1.ProtocolTCP, Port: 3000},
			},
		}},
	}
}

func guestbookInterfaces() map[netip.Addr]string {
	return map[netip.Addr]string{
		addr(redisIP):     redisIface,
		addr(redisIPv6):   redisIface,
		addr(guestbookIP): guestbkIface,
	}
}

func compileGuestbook() *nft.Ruleset {
	return nft.Compile(nft.CompileInput{Table: "nftpolicy", Model: guestbookModel(), Interfaces: guestbookInterfaces()})
}

func emptyModel() *selectors.Model { return &selectors.Model{Node: "n1"} }

// applierSequence is a series of model changes, each of which must be applied incrementally.
var applierSequence = []struct {
	name   string
	change func(m *selectors.Model, ifaces map[netip.Addr]string)
}{
	{"a remote guestbook pod joins the peer set", func(m *selectors.Model, _ map[netip.Addr]string) {
		m.AddressSets[1].Ranges = append(m.AddressSets[1].Ranges, single("198.18.1.22")...)
	}},
	{"redis-master's IPv4 address changes", func(m *selectors.Model, ifaces map[netip.Addr]string) {
		m.LocalPods[1].IPs[0] = addr("198.18.0.11")
		m.AddressSets[2].Ranges[0] = single("198.18.0.11")[0]
		delete(ifaces, addr(redisIP))
		ifaces[addr("198.18.0.11")] = redisIface
	}},
	{"guestbook-1's ingress policy is deleted", func(m *selectors.Model, _ map[netip.Addr]string) {
		m.LocalPods[0].Ingress = nil
	}},
	{"redis-policy gains a port restriction", func(m *selectors.Model, _ map[netip.Addr]string) {
		m.LocalPods[1].Ingress.Rules[0].AllPorts = false
		m.LocalPods[1].Ingress.Rules[0].Ports = []selectors.PortRange{tcp(6379)}
	}},
	{"redis-policy admits a second port: the rule matches a new port set", func(m *selectors.Model, _ map[netip.Addr]string) {
		m.LocalPods[1].Ingress.Rules[0].Ports = []selectors.PortRange{tcp(6379), tcp(16379)}
	}},
	{"redis-policy's second port changes: its port set is replaced", func(m *selectors.Model, _ map[netip.Addr]string) {
		m.LocalPods[1].Ingress.Rules[0].Ports = []selectors.PortRange{tcp(6379), {Protocol: tcp(0).Protocol, First: 26379, Last: 26380}}
	}},
	{"guestbook's egress policy is deleted: its peer, service and port sets go too", func(m *selectors.Model, _ map[netip.Addr]string) {
		m.LocalPods[0].Egress = nil
		m.AddressSets = m.AddressSets[1:2]
		m.ServiceSets = nil
	}},
}

// runApplierSequence applies the guestbook model and then every change of applierSequence through a,
// calling check with each desired ruleset after it committed.
func runApplierSequence(t *testing.T, a *nft.Applier, check func(desired *nft.Ruleset)) {
	t.Helper()
	in := nft.CompileInput{Table: "nftpolicy", Model: guestbookModel(), Interfaces: guestbookInterfaces()}
	apply := func() nft.ApplyResult {
		desired := nft.Compile(in)
		res, err := a.Apply(desired, nft.FullChanges())
		if err != nil {
			t.Fatalf("apply: %v", err)
		}
		check(desired)
		return res
	}
	if res := apply(); !res.FullReplace {
		t.Errorf("first apply must replace the table, got %+v", res)
	}
	if res := apply(); !res.Unchanged() {
		t.Errorf("re-applying the same model sent %d operations", res.Ops)
	}
	for _, step := range applierSequence {
		step.change(in.Model, in.Interfaces)
		if res := apply(); res.FullReplace || res.Unchanged() {
			t.Errorf("%s: want an incremental transaction, got %+v", step.name, res)
		}
	}
}

// ndTypes are the ICMPv6 neighbour discovery types the compiler always accepts.
var ndTypes = []uint8{nft.ICMPv6RouterSolicit, nft.ICMPv6RouterAdvert, nft.ICMPv6NeighborSolicit, nft.ICMPv6NeighborAdvert, nft.ICMPv6Redirect}

// setPodAddrsV4 is the compiler's set of local IPv4 pod addresses.
const setPodAddrsV4 = "pod-addrs-v4"

func withoutElements(s nft.Set) nft.Set {
	s.Elements = nil
	return s
}

var benchSizes = []int{25000, 50000}
