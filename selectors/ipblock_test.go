package selectors_test

import (
	"testing"

	networkingv1 "k8s.io/api/networking/v1"

	"github.com/nftpolicy/nftpolicy/selectors"
)

func TestIPBlock(t *testing.T) {
	srv := makePod("a", "srv", withLabels("app", "srv"), withIPs("198.18.1.1", "fd18::1:1"))
	client := makePod("b", "client", withIPs("198.18.2.1", "fd18::2:1"), onNode("n2"))
	pods := []selectors.Pod{srv, client}
	from := func(ps ...networkingv1.NetworkPolicyPeer) []*networkingv1.NetworkPolicy {
		return []*networkingv1.NetworkPolicy{makePolicy("a", "p", selecting("app", "srv"), withIngress(ingressRule(ps)))}
	}
	isolated := "a/srv ingress isolated by a/p"
	runResolveCases(t, []resolveCase{{
		// "except is a slice of CIDRs that should not be included within an IPBlock"
		name:     "cidr minus excepts",
		pods:     pods,
		policies: from(ipBlockPeer("198.19.0.0/16", "198.19.1.0/24", "198.19.128.0/17")),
		want:     []string{isolated, "a/srv ingress a/p[0] peers=198.19.0.0-198.19.0.255,198.19.2.0-198.19.127.255 ports=all"},
		conns: []connCase{
			allowed(conn("198.19.0.1", "198.18.1.1", tcp, 80)),
			denied(conn("198.19.1.1", "198.18.1.1", tcp, 80)),
			denied(conn("198.19.200.1", "198.18.1.1", tcp, 80)),
		},
	}, {
		// A stored cidr with host bits set is read as its network, as the API server has long accepted.
		name:     "non-canonical cidr is masked",
		pods:     pods,
		policies: from(ipBlockPeer("198.19.7.9/16", "198.19.1.1/24")),
		want:     []string{isolated, "a/srv ingress a/p[0] peers=198.19.0.0-198.19.0.255,198.19.2.0-198.19.255.255 ports=all"},
	}, {
		name:     "IPv6 block never matches IPv4 and the other way round",
		pods:     pods,
		policies: from(ipBlockPeer("fd18::/16", "fd18::2:0/112")),
		want:     []string{isolated, "a/srv ingress a/p[0] peers=fd18::-fd18::1:ffff,fd18::3:0-fd18:ffff:ffff:ffff:ffff:ffff:ffff:ffff ports=all"},
		conns: []connCase{
			allowed(conn("fd18::ff:1", "fd18::1:1", tcp, 80)),
			denied(conn("fd18::2:1", "fd18::1:1", tcp, 80)),
			denied(conn("198.19.0.1", "198.18.1.1", tcp, 80)),
		},
	}, {
		name:     "0.0.0.0/0 is every IPv4 address, pods included",
		pods:     pods,
		policies: from(ipBlockPeer("0.0.0.0/0")),
		want:     []string{isolated, "a/srv ingress a/p[0] peers=0.0.0.0-255.255.255.255 ports=all"},
		conns: []connCase{
			allowed(conn("198.18.2.1", "198.18.1.1", tcp, 80)),
			denied(conn("fd18::2:1", "fd18::1:1", tcp, 80)),
		},
	}, {
		// A union: an address excepted by one peer is still allowed by another.
		name:     "excepted address allowed by another peer",
		pods:     pods,
		policies: from(ipBlockPeer("198.18.0.0/15", "198.18.2.0/24"), podPeer(nil), nsPeer(sel("kubernetes.io/metadata.name", "b"))),
		want:     []string{isolated, "a/srv ingress a/p[0] peers=198.18.0.0-198.18.1.255,198.18.2.1,198.18.3.0-198.19.255.255,fd18::2:1 ports=all"},
		conns:    []connCase{allowed(conn("198.18.2.1", "198.18.1.1", tcp, 80))},
		problems: []string{"a/p spec.ingress[0].from[1]"},
	}, {
		// "Except values will be rejected if they are outside the cidr range"
		name:     "except outside cidr: problem, no effect",
		pods:     pods,
		policies: from(ipBlockPeer("198.19.0.0/24", "198.18.0.0/24", "fd18::/64")),
		want:     []string{isolated, "a/srv ingress a/p[0] peers=198.19.0.0-198.19.0.255 ports=all"},
		problems: []string{"a/p spec.ingress[0].from[0].ipBlock.except[0]", "a/p spec.ingress[0].from[0].ipBlock.except[1]"},
	}, {
		name:     "except wider than cidr: problem, removes everything",
		pods:     pods,
		policies: from(ipBlockPeer("198.19.0.0/24", "198.19.0.0/16")),
		want:     []string{isolated, "a/srv ingress a/p[0] peers=none ports=all"},
		problems: []string{"a/p spec.ingress[0].from[0].ipBlock.except[0]"},
	}, {
		// Dropping only the bad except would widen the block; the whole block matches nothing.
		name:     "unparsable cidr or except: problem, whole block matches nothing",
		pods:     pods,
		policies: from(ipBlockPeer("198.19.0.0/33"), ipBlockPeer("198.19.0.0/16", "198.19.1.0/24", "nonsense"), ipBlockPeer("fd18::ff:0/112")),
		want:     []string{isolated, "a/srv ingress a/p[0] peers=fd18::ff:0-fd18::ff:ffff ports=all"},
		conns:    []connCase{denied(conn("198.19.0.1", "198.18.1.1", tcp, 80))},
		problems: []string{"a/p spec.ingress[0].from[0].ipBlock.cidr", "a/p spec.ingress[0].from[1].ipBlock.except[1]"},
	}, {
		name:     "adjacent blocks merge",
		pods:     pods,
		policies: from(ipBlockPeer("198.19.0.0/24"), ipBlockPeer("198.19.1.0/24"), ipBlockPeer("198.19.0.128/25")),
		want:     []string{isolated, "a/srv ingress a/p[0] peers=198.19.0.0-198.19.1.255 ports=all"},
	}, {
		name: "egress ipBlock",
		pods: pods,
		policies: []*networkingv1.NetworkPolicy{makePolicy("a", "p", selecting("app", "srv"), withTypes("Egress"),
			withEgress(egressRule(peers(ipBlockPeer("198.18.0.0/15", "198.18.1.0/24")))))},
		want: []string{"a/srv egress isolated by a/p", "a/srv egress a/p[0] peers=198.18.0.0-198.18.0.255,198.18.2.0-198.19.255.255 ports=all"},
		conns: []connCase{
			allowed(conn("198.18.1.1", "198.18.2.1", tcp, 80)),
			denied(conn("fd18::1:1", "fd18::2:1", tcp, 80)),
		},
	}})
}
