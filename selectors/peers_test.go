package selectors_test

import (
	"testing"

	networkingv1 "k8s.io/api/networking/v1"

	"github.com/nftpolicy/nftpolicy/selectors"
)

func TestPeers(t *testing.T) {
	// Local server a/srv; clients spread over namespaces a, b, c and two nodes.
	srv := makePod("a", "srv", withLabels("app", "srv"), withIPs("198.18.1.1", "fd18::1:1"))
	aWeb := makePod("a", "web", withLabels("app", "web"), withIPs("198.18.1.2", "fd18::1:2"), onNode("n2"))
	bWeb := makePod("b", "web", withLabels("app", "web"), withIPs("198.18.2.1", "fd18::2:1"), onNode("n2"))
	bDB := makePod("b", "db", withLabels("app", "db"), withIPs("198.18.2.2"))
	cWeb := makePod("c", "web", withLabels("app", "web"), withIPs("198.18.3.1"), onNode("n2"))
	pods := []selectors.Pod{srv, aWeb, bWeb, bDB, cWeb}
	namespaces := []selectors.Namespace{
		makeNamespace("a", "team", "red"),
		makeNamespace("b", "team", "blue"),
		makeNamespace("c", "team", "blue", "env", "prod"),
	}
	from := func(ps ...networkingv1.NetworkPolicyPeer) []*networkingv1.NetworkPolicy {
		return []*networkingv1.NetworkPolicy{makePolicy("a", "p", selecting("app", "srv"), withIngress(ingressRule(ps)))}
	}
	isolated := "a/srv ingress isolated by a/p"
	runResolveCases(t, []resolveCase{{
		// "Otherwise it selects the pods matching podSelector in the policy's own namespace."
		name: "podSelector only: pods of the policy's namespace, every family",
		pods: pods, namespaces: namespaces,
		policies: from(podPeer(sel("app", "web"))),
		want:     []string{isolated, "a/srv ingress a/p[0] peers=198.18.1.2,fd18::1:2 ports=all"},
		conns: []connCase{
			allowed(conn("198.18.1.2", "198.18.1.1", tcp, 80)),
			allowed(conn("fd18::1:2", "fd18::1:1", tcp, 80)),
			denied(conn("198.18.2.1", "198.18.1.1", tcp, 80)),
		},
	}, {
		// "podSelector ... if present but empty, it selects all pods."
		name: "empty podSelector: every pod of the policy's namespace",
		pods: pods, namespaces: namespaces,
		policies: from(podPeer(sel())),
		want:     []string{isolated, "a/srv ingress a/p[0] peers=198.18.1.1-198.18.1.2,fd18::1:1-fd18::1:2 ports=all"},
	}, {
		// "Otherwise it selects all pods in the namespaces selected by namespaceSelector."
		name: "namespaceSelector only: all pods of matching namespaces",
		pods: pods, namespaces: namespaces,
		policies: from(nsPeer(sel("team", "blue"))),
		want:     []string{isolated, "a/srv ingress a/p[0] peers=198.18.2.1-198.18.2.2,198.18.3.1,fd18::2:1 ports=all"},
		conns: []connCase{
			allowed(conn("198.18.3.1", "198.18.1.1", tcp, 80)),
			denied(conn("198.18.1.2", "198.18.1.1", tcp, 80)),
		},
	}, {
		// "namespaceSelector ... if present but empty, it selects all namespaces."
		name: "empty namespaceSelector: every pod of the cluster",
		pods: pods, namespaces: namespaces,
		policies: from(nsPeer(sel())),
		want: []string{isolated,
			"a/srv ingress a/p[0] peers=198.18.1.1-198.18.1.2,198.18.2.1-198.18.2.2,198.18.3.1,fd18::1:1-fd18::1:2,fd18::2:1 ports=all"},
		conns: []connCase{denied(conn("198.19.0.1", "198.18.1.1", tcp, 80))},
	}, {
		// "If namespaceSelector is also set, then the NetworkPolicyPeer as a whole selects the pods
		// matching podSelector in the Namespaces selected by NamespaceSelector."
		name: "both selectors in one peer: AND",
		pods: pods, namespaces: namespaces,
		policies: from(nsPodPeer(sel("team", "blue"), sel("app", "web"))),
		want:     []string{isolated, "a/srv ingress a/p[0] peers=198.18.2.1,198.18.3.1,fd18::2:1 ports=all"},
		conns: []connCase{
			denied(conn("198.18.2.2", "198.18.1.1", tcp, 80)),
			denied(conn("198.18.1.2", "198.18.1.1", tcp, 80)),
		},
	}, {
		// "Items in this list are combined using a logical OR operation."
		name: "two peers: OR",
		pods: pods, namespaces: namespaces,
		policies: from(nsPeer(sel("team", "blue")), podPeer(sel("app", "web"))),
		want:     []string{isolated, "a/srv ingress a/p[0] peers=198.18.1.2,198.18.2.1-198.18.2.2,198.18.3.1,fd18::1:2,fd18::2:1 ports=all"},
	}, {
		name: "matchExpressions in namespaceSelector and podSelector",
		pods: pods, namespaces: namespaces,
		policies: from(nsPodPeer(
			&metav1LabelSelector{MatchExpressions: reqs(expr("env", "DoesNotExist"), expr("team", "In", "blue", "green"))},
			&metav1LabelSelector{MatchExpressions: reqs(expr("app", "NotIn", "web"))})),
		want: []string{isolated, "a/srv ingress a/p[0] peers=198.18.2.2 ports=all"},
	}, {
		// kubernetes.io/metadata.name is set on every namespace by the API server.
		name: "namespace name label",
		pods: pods, namespaces: namespaces,
		policies: from(nsPeer(sel("kubernetes.io/metadata.name", "c"))),
		want:     []string{isolated, "a/srv ingress a/p[0] peers=198.18.3.1 ports=all"},
	}, {
		name:       "pod of a namespace without object: no labels but its name",
		pods:       append(pods[:5:5], makePod("d", "q", withIPs("198.18.4.1"))),
		namespaces: namespaces,
		policies:   from(nsPeer(sel("kubernetes.io/metadata.name", "d")), nsPeer(sel("team", "red"))),
		want:       []string{isolated, "a/srv ingress a/p[0] peers=198.18.1.1-198.18.1.2,198.18.4.1,fd18::1:1-fd18::1:2 ports=all"},
	}, {
		name: "no pod matches: empty set, everything denied",
		pods: pods, namespaces: namespaces,
		policies: from(podPeer(sel("app", "nothing"))),
		want:     []string{isolated, "a/srv ingress a/p[0] peers=none ports=all"},
	}, {
		name: "egress peers are resolved the same way",
		pods: pods, namespaces: namespaces,
		policies: []*networkingv1.NetworkPolicy{makePolicy("a", "p", selecting("app", "srv"),
			withEgress(egressRule(peers(nsPodPeer(sel("team", "blue"), sel("app", "db"))))))},
		want: []string{isolated, "a/srv egress isolated by a/p", "a/srv egress a/p[0] peers=198.18.2.2 ports=all"},
		conns: []connCase{
			allowed(conn("198.18.1.1", "198.18.2.2", tcp, 5432)),
			denied(conn("198.18.1.1", "198.18.2.1", tcp, 5432)),
		},
	}, {
		// An invalid selector cannot be understood, so the peer matches nothing.
		name: "invalid selector: problem, peer matches nothing, other peers still count",
		pods: pods, namespaces: namespaces,
		policies: from(
			podPeer(&metav1LabelSelector{MatchExpressions: reqs(expr("app", "In"))}),
			nsPeer(&metav1LabelSelector{MatchLabels: map[string]string{"bad key!": "x"}}),
			podPeer(sel("app", "web"))),
		want:     []string{isolated, "a/srv ingress a/p[0] peers=198.18.1.2,fd18::1:2 ports=all"},
		problems: []string{"a/p spec.ingress[0].from[0].podSelector", "a/p spec.ingress[0].from[1].namespaceSelector"},
	}, {
		// "ipBlock ... If this field is set then neither of the other fields can be."
		name: "ipBlock with a selector, and an empty peer: problems, match nothing",
		pods: pods, namespaces: namespaces,
		policies: from(
			networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: "0.0.0.0/0"}, PodSelector: sel()},
			networkingv1.NetworkPolicyPeer{}),
		want:     []string{isolated, "a/srv ingress a/p[0] peers=none ports=all"},
		problems: []string{"a/p spec.ingress[0].from[0]", "a/p spec.ingress[0].from[1]"},
	}})
}
