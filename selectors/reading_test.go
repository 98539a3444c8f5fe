package selectors_test

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/nftpolicy/nftpolicy/selectors"
)

// ReadPolicy keeps every peer and port where it is written, the ones that cannot be understood
// included (they match nothing), where the Resolver merges them.
func TestReadPolicyKeepsEntriesInOrder(t *testing.T) {
	np := makePolicy("a", "p", selecting("app", "db"), withIngress(ingressRule(
		peers(ipBlockPeer("198.19.0.0/16", "198.19.1.0/24"), podPeer(sel("app", "web")), ipBlockPeer("not-a-cidr"), nsPodPeer(sel("team", "x"), sel())),
		port(corev1.ProtocolTCP, 443), port(corev1.ProtocolTCP, 80), namedPortOf(corev1.ProtocolUDP, "dns"), port("ICMP", 1),
	)))
	pr := selectors.ReadPolicy(np)
	if !slices.Equal(pr.Directions, []selectors.Direction{selectors.Ingress}) || pr.Rules(selectors.Egress) != nil {
		t.Fatalf("directions %v", pr.Directions)
	}
	rule := pr.Rules(selectors.Ingress)[0]
	if rule.AnyPeer || rule.AllPorts || len(rule.Peers) != 4 || len(rule.Ports) != 4 {
		t.Fatalf("rule %+v", rule)
	}
	block, web, bad, team := rule.Peers[0], rule.Peers[1], rule.Peers[2], rule.Peers[3]
	if !block.IPBlock || block.CIDR != netip.MustParsePrefix("198.19.0.0/16") || len(block.Except) != 1 ||
		!block.AdmitsAddr(netip.MustParseAddr("198.19.2.1")) || block.AdmitsAddr(netip.MustParseAddr("198.19.1.1")) {
		t.Errorf("ipBlock peer %+v", block)
	}
	if web.Index != 1 || web.NamespaceSelector != nil || web.Namespace != "a" || web.PodSelector.String() != "app=web" {
		t.Errorf("pod peer %+v", web)
	}
	if !bad.Invalid || bad.Index != 2 || !strings.Contains(bad.Problem, "spec.ingress[0].from[2].ipBlock.cidr") {
		t.Errorf("invalid peer %+v", bad)
	}
	if team.NamespaceSelector == nil || team.NamespaceSelector.String() != "team=x" || !team.PodSelector.Empty() {
		t.Errorf("namespace peer %+v", team)
	}
	if p := rule.Ports[1]; p.Index != 1 || p.Range != (selectors.PortRange{Protocol: corev1.ProtocolTCP, First: 80, Last: 80}) {
		t.Errorf("port 1 %+v", p)
	}
	if p := rule.Ports[2]; p.Name != "dns" || p.Protocol != corev1.ProtocolUDP {
		t.Errorf("named port %+v", p)
	}
	if p := rule.Ports[3]; !p.Invalid || !strings.Contains(p.Problem, "unsupported protocol") {
		t.Errorf("invalid port %+v", p)
	}
	if len(pr.Problems) != 2 {
		t.Errorf("problems %v, want the cidr and the protocol", pr.Problems)
	}
}

// The matching functions of a reading decide as the Resolver's Model does.
func TestReadingMatches(t *testing.T) {
	web := makePod("a", "web", withLabels("app", "web"), withIPs("198.18.1.1"), withPorts("http/TCP/8080"))
	other := makePod("b", "web", withLabels("app", "web"), withIPs("198.18.2.1"))
	done := makePod("a", "done", withLabels("app", "web"), withIPs("198.18.1.9"), inPhase(corev1.PodSucceeded))
	np := makePolicy("a", "p", selecting("app", "web"), withEgress(egressRule(
		peers(podPeer(sel("app", "web")), nsPodPeer(sel("team", "x"), sel("app", "web"))),
		namedPortOf(corev1.ProtocolTCP, "http"))))
	// Without policyTypes, a policy with egress rules affects both directions.
	pr := selectors.ReadPolicy(np)
	if !pr.Selects(&web) || pr.Selects(&other) || pr.Selects(&done) || !pr.Affects(selectors.Egress) || !pr.Affects(selectors.Ingress) || pr.Rules(selectors.Ingress) != nil {
		t.Errorf("selection of %+v", pr)
	}
	rule := pr.Rules(selectors.Egress)[0]
	scoped, crossNS := rule.Peers[0], rule.Peers[1]
	if !scoped.AdmitsPod(&web, selectors.NamespaceLabels("a", nil)) || scoped.AdmitsPod(&other, selectors.NamespaceLabels("b", nil)) || scoped.AdmitsPod(&done, selectors.NamespaceLabels("a", nil)) {
		t.Error("the scoped peer selects pods of other namespaces or terminated pods")
	}
	if crossNS.AdmitsPod(&other, selectors.NamespaceLabels("b", nil)) || !crossNS.AdmitsPod(&other, selectors.NamespaceLabels("b", map[string]string{"team": "x"})) {
		t.Error("the namespaceSelector peer does not follow the namespace's labels")
	}
	named := rule.Ports[0]
	if !named.Admits(corev1.ProtocolTCP, 8080, &web) || named.Admits(corev1.ProtocolTCP, 80, &web) || named.Admits(corev1.ProtocolUDP, 8080, &web) || named.Admits(corev1.ProtocolTCP, 8080, nil) {
		t.Error("the named port does not resolve on the pod reached")
	}
}
