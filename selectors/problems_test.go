package selectors_test

import (
	"reflect"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"

	"github.com/nftpolicy/nftpolicy/selectors"
)

// Problems never widen access and are reported once, sorted by policy, field and message.
func TestProblems(t *testing.T) {
	srv := makePod("a", "srv", withLabels("app", "srv"), withIPs("198.18.1.1"))
	srv2 := makePod("a", "srv2", withLabels("app", "srv"), withIPs("198.18.1.2"))
	runResolveCases(t, []resolveCase{{
		// An invalid podSelector cannot say which pods it selects: the policy selects none (it adds
		// no allowance either, so nothing is widened).
		name: "invalid podSelector selects nothing",
		pods: []selectors.Pod{srv},
		policies: []*networkingv1.NetworkPolicy{
			makePolicy("a", "bad", selectingExpr(expr("app", "Maybe", "srv")), withIngress(ingressRule(nil))),
		},
		want:     []string{},
		problems: []string{"a/bad spec.podSelector"},
	}, {
		name: "sorted and deduplicated across policies, rules and pods",
		pods: []selectors.Pod{srv, srv2},
		policies: []*networkingv1.NetworkPolicy{
			makePolicy("a", "z", selecting("app", "srv"),
				withIngress(ingressRule(peers(ipBlockPeer("x")), namedPortOf(tcp, "http"))),
				withEgress(egressRule(peers(ipBlockPeer("198.19.0.0/16", "198.18.0.0/24"))))),
			makePolicy("a", "m", selecting("app", "srv"),
				withIngress(ingressRule(peers(ipBlockPeer("x")), namedPortOf(tcp, "http")), ingressRule(peers(ipBlockPeer("x"))))),
			makePolicy("a", "m-copy", selecting("app", "srv"), withTypes("Ingress", "Sideways")),
		},
		problems: []string{
			"a/m spec.ingress[0].from[0].ipBlock.cidr",
			"a/m spec.ingress[0].ports[0].port", // a/srv
			"a/m spec.ingress[0].ports[0].port", // a/srv2
			"a/m spec.ingress[1].from[0].ipBlock.cidr",
			"a/m-copy spec.policyTypes[1]",
			"a/z spec.egress[0].to[0].ipBlock.except[0]",
			"a/z spec.ingress[0].from[0].ipBlock.cidr",
			"a/z spec.ingress[0].ports[0].port",
			"a/z spec.ingress[0].ports[0].port",
		},
	}})
}

func TestProblemMessages(t *testing.T) {
	s := &selectors.Snapshot{
		Node: testNode,
		Pods: []selectors.Pod{makePod("a", "srv", withIPs("198.18.1.1"))},
		Policies: []*networkingv1.NetworkPolicy{makePolicy("a", "p", selecting(),
			withIngress(ingressRule(peers(ipBlockPeer("198.18.0.0/16", "10.0.0.0/8")), namedPortOf(udp, "dns"))))},
	}
	want := []selectors.Problem{
		{Policy: selectors.PolicyRef{"a", "p"}, Field: "spec.ingress[0].from[0].ipBlock.except[0]", Message: "10.0.0.0/8 is not within cidr 198.18.0.0/16"},
		{Policy: selectors.PolicyRef{"a", "p"}, Field: "spec.ingress[0].ports[0].port", Message: `named port "dns" (UDP) is not defined by pod a/srv; it matches nothing for that pod`},
	}
	if got := selectors.Resolve(s).Problems; !reflect.DeepEqual(got, want) {
		t.Errorf("Problems:\n got %v\nwant %v", got, want)
	}
}
