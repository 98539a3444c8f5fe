package selectors_test

import (
	"testing"

	networkingv1 "k8s.io/api/networking/v1"

	"github.com/nftpolicy/nftpolicy/selectors"
)

func TestIsolation(t *testing.T) {
	x := makePod("a", "x", withLabels("app", "x"), withIPs("198.18.1.1"))
	y := makePod("a", "y", withLabels("app", "y"), withIPs("198.18.1.2"))
	b := makePod("b", "w", withLabels("app", "x"), withIPs("198.18.2.1"))
	outside := "198.19.0.1"
	runResolveCases(t, []resolveCase{{
		// "Traffic is allowed to a pod if there are no NetworkPolicies selecting the pod"
		name: "no policy: nothing isolated, local pods still listed",
		pods: []selectors.Pod{x, y},
		want: []string{},
		conns: []connCase{
			allowed(conn(outside, "198.18.1.1", tcp, 80)),
			allowed(conn("198.18.1.1", outside, udp, 53)),
		},
	}, {
		// "An empty selector matches all pods in the policy's namespace." and "If this field is empty
		// then this NetworkPolicy does not allow any traffic"
		name:     "empty podSelector isolates every pod of the namespace only",
		pods:     []selectors.Pod{x, y, b},
		policies: []*networkingv1.NetworkPolicy{makePolicy("a", "deny", selecting())},
		want: []string{
			"a/x ingress isolated by a/deny",
			"a/y ingress isolated by a/deny",
		},
		conns: []connCase{
			denied(conn(outside, "198.18.1.1", tcp, 80)),
			denied(conn("198.18.2.1", "198.18.1.2", tcp, 80)),
			allowed(conn(outside, "198.18.2.1", tcp, 80)),
			// policyTypes defaults to Ingress only: egress stays open.
			allowed(conn("198.18.1.1", "198.18.2.1", tcp, 80)),
		},
	}, {
		// "podSelector selects the pods to which this NetworkPolicy object applies."
		name:     "podSelector selects only matching pods",
		pods:     []selectors.Pod{x, y},
		policies: []*networkingv1.NetworkPolicy{makePolicy("a", "deny-x", selecting("app", "x"))},
		want:     []string{"a/x ingress isolated by a/deny-x"},
		conns: []connCase{
			denied(conn(outside, "198.18.1.1", tcp, 80)),
			allowed(conn(outside, "198.18.1.2", tcp, 80)),
		},
	}, {
		// "policies that contain an egress section are assumed to affect egress"
		name: "egress section without policyTypes isolates both directions",
		pods: []selectors.Pod{x, y},
		policies: []*networkingv1.NetworkPolicy{makePolicy("a", "p", selecting("app", "x"),
			withEgress(egressRule(peers(podPeer(sel("app", "y"))))))},
		want: []string{
			"a/x ingress isolated by a/p",
			"a/x egress isolated by a/p",
			"a/x egress a/p[0] peers=198.18.1.2 ports=all",
		},
		conns: []connCase{
			allowed(conn("198.18.1.1", "198.18.1.2", tcp, 80)),
			denied(conn("198.18.1.1", outside, tcp, 80)),
			denied(conn("198.18.1.2", "198.18.1.1", tcp, 80)),
		},
	}, {
		// "If you want to write an egress-only policy, you must explicitly specify policyTypes [ "Egress" ]."
		name: "egress-only policy leaves ingress open",
		pods: []selectors.Pod{x, y},
		policies: []*networkingv1.NetworkPolicy{makePolicy("a", "p", selecting("app", "x"),
			withTypes(networkingv1.PolicyTypeEgress))},
		want: []string{"a/x egress isolated by a/p"},
		conns: []connCase{
			denied(conn("198.18.1.1", "198.18.1.2", tcp, 80)),
			allowed(conn("198.18.1.2", "198.18.1.1", tcp, 80)),
		},
	}, {
		// "if you want to write a policy that specifies that no egress is allowed, you must specify a
		// policyTypes value that include "Egress""
		name: "policyTypes Egress without egress rules denies all egress; ingress rules are ignored",
		pods: []selectors.Pod{x, y},
		policies: []*networkingv1.NetworkPolicy{makePolicy("a", "p", selecting("app", "x"),
			withTypes(networkingv1.PolicyTypeEgress), withIngress(ingressRule(nil)))},
		want: []string{"a/x egress isolated by a/p"},
		conns: []connCase{
			denied(conn("198.18.1.1", outside, udp, 53)),
			allowed(conn(outside, "198.18.1.1", tcp, 80)),
		},
	}, {
		// "Multiple network policies can select the same set of pods. In this case, the ingress rules
		// for each are combined additively."
		name: "rules of every selecting policy are unioned; a rule-less policy is still listed",
		pods: []selectors.Pod{x, y},
		policies: []*networkingv1.NetworkPolicy{
			makePolicy("a", "deny", selecting()),
			makePolicy("a", "allow-y", selecting("app", "x"), withIngress(ingressRule(peers(podPeer(sel("app", "y")))))),
			makePolicy("a", "allow-outside", selecting("app", "x"), withIngress(ingressRule(peers(ipBlockPeer("198.19.0.0/16")), port(tcp, 80)))),
		},
		want: []string{
			"a/x ingress isolated by a/allow-outside,a/allow-y,a/deny",
			"a/x ingress a/allow-outside[0] peers=198.19.0.0-198.19.255.255 ports=TCP:80",
			"a/x ingress a/allow-y[0] peers=198.18.1.2 ports=all",
			"a/y ingress isolated by a/deny",
		},
		conns: []connCase{
			allowed(conn("198.18.1.2", "198.18.1.1", udp, 53)),
			allowed(conn(outside, "198.18.1.1", tcp, 80)),
			denied(conn(outside, "198.18.1.1", tcp, 81)),
			denied(conn("198.18.1.1", "198.18.1.2", tcp, 80)),
		},
	}, {
		// "ingress ... If this field is empty then this NetworkPolicy does not allow any traffic";
		// an empty rule (from and ports missing) "matches all sources" and "all ports".
		name:     "ingress [{}] allows everything",
		pods:     []selectors.Pod{x},
		policies: []*networkingv1.NetworkPolicy{makePolicy("a", "all", selecting(), withIngress(ingressRule(nil)))},
		want: []string{
			"a/x ingress isolated by a/all",
			"a/x ingress a/all[0] peers=any ports=all",
		},
		conns: []connCase{
			allowed(conn(outside, "198.18.1.1", tcp, 80)),
			allowed(conn("fd18::ff:1", "198.18.1.1", icmp, 0)),
		},
	}, {
		name: "policy in another namespace does not select",
		pods: []selectors.Pod{x, b},
		policies: []*networkingv1.NetworkPolicy{
			makePolicy("b", "deny", selecting("app", "x")),
		},
		want: []string{"b/w ingress isolated by b/deny"},
		conns: []connCase{
			allowed(conn(outside, "198.18.1.1", tcp, 80)),
			denied(conn(outside, "198.18.2.1", tcp, 80)),
		},
	}, {
		name: "matchExpressions in podSelector",
		pods: []selectors.Pod{x, y, makePod("a", "z", withIPs("198.18.1.3"))},
		policies: []*networkingv1.NetworkPolicy{
			makePolicy("a", "in", selectingExpr(expr("app", "In", "x", "q"))),
			makePolicy("a", "notin", selectingExpr(expr("app", "NotIn", "x"))),
			makePolicy("a", "exists", selectingExpr(expr("app", "Exists"))),
			makePolicy("a", "dne", selectingExpr(expr("app", "DoesNotExist"))),
		},
		want: []string{
			"a/x ingress isolated by a/exists,a/in",
			"a/y ingress isolated by a/exists,a/notin",
			"a/z ingress isolated by a/dne,a/notin",
		},
	}})
}
