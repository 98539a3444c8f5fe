package selectors_test

import (
	"testing"

	networkingv1 "k8s.io/api/networking/v1"

	"github.com/nftpolicy/nftpolicy/selectors"
)

func TestPorts(t *testing.T) {
	// Two local servers declare "http" with different numbers; b/dst1 and b/dst2 are egress
	// destinations on another node.
	srv1 := makePod("a", "srv1", withLabels("app", "srv"), withIPs("198.18.1.1", "fd18::1:1"),
		withPorts("http/TCP/8080", "dns/UDP/5353", "dns/TCP/5354"))
	srv2 := makePod("a", "srv2", withLabels("app", "srv"), withIPs("198.18.1.2"), withPorts("http//9090"))
	srv3 := makePod("a", "srv3", withLabels("app", "srv"), withIPs("198.18.1.3"))
	dst1 := makePod("b", "dst1", withLabels("app", "dst"), withIPs("198.18.2.1", "fd18::2:1"), withPorts("http/TCP/8081"), onNode("n2"))
	dst2 := makePod("b", "dst2", withLabels("app", "dst"), withIPs("198.18.2.2"), withPorts("http/TCP/8082", "http-alt/TCP/8083"), onNode("n2"))
	dst3 := makePod("b", "dst3", withLabels("app", "dst"), withIPs("198.18.2.3", "fd18::2:3"), withPorts("http/TCP/8085"), onNode("n2"))
	other := makePod("c", "other", withLabels("app", "dst"), withIPs("198.18.3.1"), withPorts("http/TCP/8084"), onNode("n2"))
	outside := "198.19.0.1"
	ingressPorts := func(ports ...networkingv1.NetworkPolicyPort) []*networkingv1.NetworkPolicy {
		return []*networkingv1.NetworkPolicy{makePolicy("a", "p", selecting("app", "srv"), withIngress(ingressRule(nil, ports...)))}
	}
	egressTo := func(to []networkingv1.NetworkPolicyPeer, ports ...networkingv1.NetworkPolicyPort) []*networkingv1.NetworkPolicy {
		return []*networkingv1.NetworkPolicy{makePolicy("a", "p", selecting("app", "srv"), withTypes("Egress"), withEgress(egressRule(to, ports...)))}
	}
	// What "http" resolves to on dst1, dst2 and dst3, the pods of the ipBlock cases: the named port of
	// an ipBlock rule resolves on the pods with an address in the block.
	const httpOfEveryPod = "198.18.2.1/TCP:8081 198.18.2.2/TCP:8082 198.18.2.3/TCP:8085 fd18::2:1/TCP:8081 fd18::2:3/TCP:8085"
	iso := func(pod string) string { return "a/" + pod + " ingress isolated by a/p" }
	runResolveCases(t, []resolveCase{{
		// "protocol ... If not specified, this field defaults to TCP."
		name:     "missing protocol is TCP",
		pods:     []selectors.Pod{srv3},
		policies: ingressPorts(defaultProtocolPort(80)),
		want:     []string{iso("srv3"), "a/srv3 ingress a/p[0] peers=any ports=TCP:80"},
		conns: []connCase{
			allowed(conn(outside, "198.18.1.3", tcp, 80)),
			denied(conn(outside, "198.18.1.3", udp, 80)),
			denied(conn(outside, "198.18.1.3", icmp, 0)),
		},
	}, {
		// "port ... If this field is not provided, this matches all port names and numbers."
		name:     "missing port is every port of the protocol",
		pods:     []selectors.Pod{srv3},
		policies: ingressPorts(everyPortOf(udp)),
		want:     []string{iso("srv3"), "a/srv3 ingress a/p[0] peers=any ports=UDP:0-65535"},
		conns: []connCase{
			allowed(conn(outside, "198.18.1.3", udp, 1)),
			denied(conn(outside, "198.18.1.3", tcp, 1)),
		},
	}, {
		// "endPort indicates that the range of ports from port to endPort if set, inclusive, should
		// be allowed"; "Each item in this list is combined using a logical OR."
		name:     "endPort ranges, overlapping and adjacent entries merge per protocol",
		pods:     []selectors.Pod{srv3},
		policies: ingressPorts(portRange(tcp, 1000, 2000), port(tcp, 2001), portRange(tcp, 1500, 1600), port(udp, 53), port(tcp, 80), port(sctp, 80)),
		want:     []string{iso("srv3"), "a/srv3 ingress a/p[0] peers=any ports=SCTP:80,TCP:80,TCP:1000-2001,UDP:53"},
		conns: []connCase{
			allowed(conn(outside, "198.18.1.3", tcp, 2001)),
			denied(conn(outside, "198.18.1.3", tcp, 2002)),
			allowed(conn(outside, "198.18.1.3", sctp, 80)),
		},
	}, {
		// "If this field is empty or missing, this rule matches all ports (traffic not restricted by port)."
		name:     "no ports: all ports, ICMP included",
		pods:     []selectors.Pod{srv3},
		policies: ingressPorts(),
		want:     []string{iso("srv3"), "a/srv3 ingress a/p[0] peers=any ports=all"},
		conns:    []connCase{allowed(conn(outside, "198.18.1.3", icmp, 0))},
	}, {
		// "protocol represents the protocol (TCP, UDP, or SCTP) which traffic must match." A UDP-only
		// policy still isolates: TCP and ICMP are denied.
		name:     "UDP-only and SCTP-only rules isolate other protocols",
		pods:     []selectors.Pod{srv3},
		policies: ingressPorts(everyPortOf(sctp), port(udp, 53)),
		want:     []string{iso("srv3"), "a/srv3 ingress a/p[0] peers=any ports=SCTP:0-65535,UDP:53"},
		conns: []connCase{
			denied(conn(outside, "198.18.1.3", tcp, 53)),
			denied(conn(outside, "198.18.1.3", icmp, 0)),
			allowed(conn(outside, "198.18.1.3", sctp, 9)),
		},
	}, {
		// "port represents the port on the given protocol. This can either be a numerical or named
		// port on a pod." For ingress the pod is the selected pod itself.
		name:     "ingress named port resolves on each selected pod, by name and protocol",
		pods:     []selectors.Pod{srv1, srv2, srv3},
		policies: ingressPorts(namedPortOf(tcp, "http"), namedPortOf(udp, "dns"), port(tcp, 22)),
		want: []string{
			iso("srv1"), "a/srv1 ingress a/p[0] peers=any ports=TCP:22,TCP:8080,UDP:5353",
			iso("srv2"), "a/srv2 ingress a/p[0] peers=any ports=TCP:22,TCP:9090",
			iso("srv3"), "a/srv3 ingress a/p[0] peers=any ports=TCP:22",
		},
		conns: []connCase{
			allowed(conn(outside, "198.18.1.1", tcp, 8080)),
			denied(conn(outside, "198.18.1.1", tcp, 9090)),
			allowed(conn(outside, "198.18.1.2", tcp, 9090)),
			denied(conn(outside, "198.18.1.1", tcp, 5353)),
			allowed(conn(outside, "198.18.1.1", udp, 5353)),
			denied(conn(outside, "198.18.1.3", tcp, 8080)),
		},
		problems: []string{
			"a/p spec.ingress[0].ports[0].port", // srv3 has no http
			"a/p spec.ingress[0].ports[1].port", // srv2 has no UDP dns
			"a/p spec.ingress[0].ports[1].port", // srv3 has no UDP dns
		},
	}, {
		// For egress the named port is the destination pod's: one ServiceSet per name, with each
		// destination pod's own number.
		name:     "egress named port resolves per destination pod, every family",
		pods:     []selectors.Pod{srv3, dst1, dst2, other},
		policies: egressTo(peers(nsPeer(sel("kubernetes.io/metadata.name", "b"))), namedPortOf(tcp, "http")),
		want: []string{"a/srv3 egress isolated by a/p",
			"a/srv3 egress a/p[0] peers=198.18.2.1-198.18.2.2,fd18::2:1 ports={198.18.2.1/TCP:8081 198.18.2.2/TCP:8082 fd18::2:1/TCP:8081}"},
		conns: []connCase{
			allowed(conn("198.18.1.3", "198.18.2.1", tcp, 8081)),
			denied(conn("198.18.1.3", "198.18.2.1", tcp, 8082)),
			allowed(conn("198.18.1.3", "198.18.2.2", tcp, 8082)),
			denied(conn("198.18.1.3", "198.18.3.1", tcp, 8084)),
		},
	}, {
		// "If this field is empty or missing, this rule matches all destinations": the named port is
		// resolved on every pod of the cluster.
		name:     "egress named port with empty to: every pod",
		pods:     []selectors.Pod{srv3, dst1, other},
		policies: egressTo(nil, namedPortOf(tcp, "http")),
		want: []string{"a/srv3 egress isolated by a/p",
			"a/srv3 egress a/p[0] peers=any ports={198.18.2.1/TCP:8081 198.18.3.1/TCP:8084 fd18::2:1/TCP:8081}"},
		conns: []connCase{
			allowed(conn("198.18.1.3", "198.18.3.1", tcp, 8084)),
			denied(conn("198.18.1.3", outside, tcp, 8084)),
		},
	}, {
		// "port ... This can either be a numerical or named port on a pod." When the destination
		// is a pod, the name resolves on that pod however the peer matched it, an ipBlock too.
		name:     "egress named port with an ipBlock host address of a pod, both families",
		pods:     []selectors.Pod{srv3, dst1, dst2, dst3},
		policies: egressTo(peers(ipBlockPeer("198.18.2.1/32"), ipBlockPeer("fd18::2:1/128")), namedPortOf(tcp, "http")),
		want: []string{"a/srv3 egress isolated by a/p",
			"a/srv3 egress a/p[0] peers=198.18.2.1,fd18::2:1 ports={198.18.2.1/TCP:8081 fd18::2:1/TCP:8081}"},
		conns: []connCase{
			allowed(conn("198.18.1.3", "198.18.2.1", tcp, 8081)),
			allowed(conn("198.18.1.3", "fd18::2:1", tcp, 8081)),
			denied(conn("198.18.1.3", "198.18.2.1", tcp, 8082)),
			denied(conn("198.18.1.3", "198.18.2.2", tcp, 8082)), // dst2 is not in the block
			denied(conn("198.18.1.3", "fd18::2:3", tcp, 8085)),
		},
	}, {
		// A block holding several pods: each destination pod's own number, and nothing for an
		// address of the block that is no pod's.
		name:     "egress named port over a block of pods mapping the name to different numbers",
		pods:     []selectors.Pod{srv3, dst1, dst2, dst3},
		policies: egressTo(peers(ipBlockPeer("198.18.2.0/24"), ipBlockPeer("fd18::2:0/112")), namedPortOf(tcp, "http"), port(tcp, 443)),
		want: []string{"a/srv3 egress isolated by a/p",
			"a/srv3 egress a/p[0] peers=198.18.2.0-198.18.2.255,fd18::2:0-fd18::2:ffff ports=TCP:443,{" + httpOfEveryPod + "}"},
		conns: []connCase{
			allowed(conn("198.18.1.3", "198.18.2.1", tcp, 8081)),
			allowed(conn("198.18.1.3", "198.18.2.2", tcp, 8082)),
			allowed(conn("198.18.1.3", "198.18.2.3", tcp, 8085)),
			allowed(conn("198.18.1.3", "fd18::2:1", tcp, 8081)),
			allowed(conn("198.18.1.3", "fd18::2:3", tcp, 8085)),
			denied(conn("198.18.1.3", "198.18.2.1", tcp, 8082)),
			denied(conn("198.18.1.3", "198.18.2.2", tcp, 8081)),
			denied(conn("198.18.1.3", "fd18::2:3", tcp, 8081)),
			denied(conn("198.18.1.3", "198.18.2.99", tcp, 8081)), // in the block, no pod
			denied(conn("198.18.1.3", "fd18::2:99", tcp, 8081)),
			allowed(conn("198.18.1.3", "198.18.2.99", tcp, 443)),
		},
	}, {
		// "except is a list of CIDRs that should not be included within an IPBlock": the pod an
		// except removes is not reached on its named port either.
		name: "egress named port over a block whose except removes one pod, both families",
		pods: []selectors.Pod{srv3, dst1, dst2, dst3},
		policies: egressTo(peers(ipBlockPeer("198.18.2.0/24", "198.18.2.3/32"), ipBlockPeer("fd18::2:0/112", "fd18::2:3/128")),
			namedPortOf(tcp, "http")),
		conns: []connCase{
			allowed(conn("198.18.1.3", "198.18.2.1", tcp, 8081)),
			allowed(conn("198.18.1.3", "198.18.2.2", tcp, 8082)),
			allowed(conn("198.18.1.3", "fd18::2:1", tcp, 8081)),
			denied(conn("198.18.1.3", "198.18.2.3", tcp, 8085)),
			denied(conn("198.18.1.3", "fd18::2:3", tcp, 8085)),
		},
	}, {
		// An ipBlock beside selector peers: the named port resolves on the pods of the block and on
		// those the selectors select.
		name:     "egress named port with an ipBlock and selector peers",
		pods:     []selectors.Pod{srv3, dst1, dst2, other},
		policies: egressTo(peers(ipBlockPeer("198.18.2.1/32"), podPeer(nil), nsPodPeer(sel(), sel("app", "nothing")), nsPeer(sel("kubernetes.io/metadata.name", "c"))), namedPortOf(tcp, "http")),
		conns: []connCase{
			allowed(conn("198.18.1.3", "198.18.2.1", tcp, 8081)),
			denied(conn("198.18.1.3", "198.18.2.2", tcp, 8082)),
			allowed(conn("198.18.1.3", "198.18.3.1", tcp, 8084)),
		},
		problems: []string{"a/p spec.egress[0].to[1]"},
	}, {
		name:     "egress numeric and named ports together; two names give two sets",
		pods:     []selectors.Pod{srv3, dst1, dst2},
		policies: egressTo(peers(podPeer(sel()), nsPeer(sel("kubernetes.io/metadata.name", "b"))), namedPortOf(tcp, "http-alt"), namedPortOf(tcp, "http"), port(udp, 53)),
		conns: []connCase{
			allowed(conn("198.18.1.3", "198.18.2.2", tcp, 8083)),
			allowed(conn("198.18.1.3", "198.18.2.2", tcp, 8082)),
			denied(conn("198.18.1.3", "198.18.2.1", tcp, 8083)),
			allowed(conn("198.18.1.3", "198.18.2.1", udp, 53)),
		},
	}, {
		// "The endPort must be equal or greater than port." and "This field cannot be defined if the
		// port field is not defined or if the port field is defined as a named (string) port."
		name: "invalid port entries: problems, each matches nothing",
		pods: []selectors.Pod{srv1},
		policies: ingressPorts(portRange(tcp, 90, 80), port(tcp, 0), port(tcp, 70000),
			networkingv1.NetworkPolicyPort{EndPort: ptr(int32(90))},
			withEndPort(namedPortOf(tcp, "http"), 9000),
			port("ICMP", 1)),
		want: []string{"a/srv1 ingress isolated by a/p", "a/srv1 ingress a/p[0] peers=any ports=none"},
		conns: []connCase{
			denied(conn(outside, "198.18.1.1", tcp, 8080)),
			denied(conn(outside, "198.18.1.1", icmp, 0)),
		},
		problems: []string{
			"a/p spec.ingress[0].ports[0].endPort",
			"a/p spec.ingress[0].ports[1].port",
			"a/p spec.ingress[0].ports[2].port",
			"a/p spec.ingress[0].ports[3].endPort",
			"a/p spec.ingress[0].ports[4].endPort",
			"a/p spec.ingress[0].ports[5].protocol",
		},
	}})
}

func ptr[T any](v T) *T { return &v }

func withEndPort(p networkingv1.NetworkPolicyPort, end int32) networkingv1.NetworkPolicyPort {
	p.EndPort = &end
	return p
}
