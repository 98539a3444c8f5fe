package selectors_test

import (
	"testing"

	networkingv1 "k8s.io/api/networking/v1"

	"github.com/nftpolicy/nftpolicy/selectors"
)

// TestBothEnds covers the rule that a connection between two pods needs the egress of one and the
// ingress of the other, wherever the two pods run.
func TestBothEnds(t *testing.T) {
	client := makePod("a", "client", withLabels("app", "client"), withIPs("198.18.1.1"))
	server := makePod("b", "server", withLabels("app", "server"), withIPs("198.18.2.1"), withPorts("http/TCP/8080"), onNode("n2"))
	clientEgress := makePolicy("a", "egress", selecting("app", "client"), withTypes("Egress"),
		withEgress(egressRule(peers(nsPeer(sel("kubernetes.io/metadata.name", "b"))), namedPortOf(tcp, "http"))))
	serverIngress := makePolicy("b", "ingress", selecting("app", "server"),
		withIngress(ingressRule(peers(nsPeer(sel("kubernetes.io/metadata.name", "a"))), port(tcp, 8080), port(tcp, 9090))))
	runResolveCases(t, []resolveCase{{
		// "Outgoing traffic is allowed if ... the traffic matches at least one egress rule" of the
		// source, and "Traffic is allowed to a pod if ... the traffic matches at least one ingress
		// rule" of the destination: both must hold.
		name:     "egress of the source AND ingress of the destination",
		pods:     []selectors.Pod{client, server},
		policies: []*networkingv1.NetworkPolicy{clientEgress, serverIngress},
		conns: []connCase{
			allowed(conn("198.18.1.1", "198.18.2.1", tcp, 8080)),
			denied(conn("198.18.1.1", "198.18.2.1", tcp, 9090)),  // egress has only the named port
			denied(conn("198.18.1.1", "198.19.0.1", tcp, 8080)),  // no egress rule for outside
			allowed(conn("198.18.2.1", "198.18.1.1", tcp, 8080)), // neither the server's egress nor the client's ingress is isolated
		},
	}, {
		// An address that is no pod has no policy: only the pod side decides.
		name:     "outside addresses are subject to the pod side only",
		pods:     []selectors.Pod{client, server},
		policies: []*networkingv1.NetworkPolicy{serverIngress},
		conns: []connCase{
			allowed(conn("198.18.1.1", "198.19.0.1", tcp, 1)),
			denied(conn("198.19.0.1", "198.18.2.1", tcp, 8080)),
			allowed(conn("198.18.2.1", "198.19.0.1", icmp, 0)),
		},
	}, {
		// Traffic without ports matches only "rules matches all ports".
		name:     "ICMP is allowed only by rules without ports",
		pods:     []selectors.Pod{client, server},
		policies: []*networkingv1.NetworkPolicy{serverIngress, makePolicy("b", "icmp", selecting(), withIngress(ingressRule(peers(ipBlockPeer("198.19.0.0/16")))))},
		conns: []connCase{
			denied(conn("198.18.1.1", "198.18.2.1", icmp, 0)),
			allowed(conn("198.19.0.1", "198.18.2.1", icmp, 0)),
		},
	}})
}
