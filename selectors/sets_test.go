package selectors_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand"
	"reflect"
	"regexp"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"

	"github.com/nftpolicy/nftpolicy/selectors"
)

// setsSnapshot has a local server in namespaces a and b and web pods in both.
func setsSnapshot(policies ...*networkingv1.NetworkPolicy) *selectors.Snapshot {
	return &selectors.Snapshot{
		Node: testNode,
		Pods: []selectors.Pod{
			makePod("a", "srv", withLabels("app", "srv"), withIPs("198.18.1.1")),
			makePod("a", "web", withLabels("app", "web", "tier", "fe"), withIPs("198.18.1.2"), withPorts("http/TCP/8080"), onNode("n2")),
			makePod("b", "srv", withLabels("app", "srv"), withIPs("198.18.2.1")),
			makePod("b", "web", withLabels("app", "web", "tier", "fe"), withIPs("198.18.2.2"), withPorts("http/TCP/8081"), onNode("n2")),
		},
		Namespaces: []selectors.Namespace{makeNamespace("a", "team", "red"), makeNamespace("b", "team", "red")},
		Policies:   policies,
	}
}

func ingressFrom(ns, name string, ps ...networkingv1.NetworkPolicyPeer) *networkingv1.NetworkPolicy {
	return makePolicy(ns, name, selecting("app", "srv"), withIngress(ingressRule(ps)))
}

func egressNamed(ns, name string, ps ...networkingv1.NetworkPolicyPeer) *networkingv1.NetworkPolicy {
	return makePolicy(ns, name, selecting("app", "srv"), withEgress(egressRule(ps, namedPortOf(tcp, "http"))))
}

func TestSetSharing(t *testing.T) {
	for _, tc := range []struct {
		name     string
		s        *selectors.Snapshot
		sets     int    // distinct AddressSets
		services int    // distinct ServiceSets
		desc     string // description of the first AddressSet, when not empty
	}{{
		// Sets are named by definition: equal definitions share one set.
		name: "same peers in two policies share one set",
		s: setsSnapshot(
			ingressFrom("a", "p1", nsPeer(sel("team", "red"))),
			ingressFrom("a", "p2", nsPeer(sel("team", "red")))),
		sets: 1, desc: "namespaces={team=red} pods={}",
	}, {
		name: "selectors written differently but equal share one set; peer order does not matter",
		s: setsSnapshot(
			ingressFrom("a", "p1", podPeer(sel("app", "web", "tier", "fe")), ipBlockPeer("198.19.0.0/16")),
			ingressFrom("a", "p2", ipBlockPeer("198.19.0.0/16"), podPeer(sel("tier", "fe", "app", "web")), podPeer(sel("app", "web", "tier", "fe"))),
			ingressFrom("a", "p3", podPeer(&metav1LabelSelector{MatchExpressions: reqs(expr("tier", "In", "fe")), MatchLabels: map[string]string{"app": "web"}})),
			ingressFrom("a", "p4", podPeer(&metav1LabelSelector{MatchExpressions: reqs(expr("tier", "In", "fe"))}), ipBlockPeer("198.19.0.0/16")),
			ingressFrom("a", "p5", podPeer(&metav1LabelSelector{MatchExpressions: reqs(expr("tier", "In", "fe", "be"))})),
			ingressFrom("a", "p6", podPeer(&metav1LabelSelector{MatchExpressions: reqs(expr("tier", "In", "be", "fe"))}))),
		sets: 4,
	}, {
		// "Otherwise it selects the pods matching podSelector in the policy's own namespace": the
		// namespace is part of the definition.
		name: "podSelector-only peers of different namespaces are different sets",
		s: setsSnapshot(
			ingressFrom("a", "p", podPeer(sel("app", "web"))),
			ingressFrom("b", "p", podPeer(sel("app", "web")))),
		sets: 2,
	}, {
		name: "namespaceSelector peers are not scoped: policies of different namespaces share",
		s: setsSnapshot(
			ingressFrom("a", "p", nsPodPeer(sel("team", "red"), sel("app", "web"))),
			ingressFrom("b", "p", nsPodPeer(sel("team", "red"), sel("app", "web")))),
		sets: 1, desc: "namespaces={team=red} pods={app=web}",
	}, {
		name: "egress named ports: one ServiceSet per definition",
		s: setsSnapshot(
			egressNamed("a", "p", nsPeer(sel("team", "red"))),
			egressNamed("b", "p", nsPeer(sel("team", "red"))),
			egressNamed("b", "q", podPeer(sel()))),
		sets: 2, services: 2,
	}, {
		name: "only sets of rules that apply to local pods",
		s: setsSnapshot(
			makePolicy("a", "web", selecting("app", "web"), withIngress(ingressRule(peers(ipBlockPeer("198.19.0.0/16"))))),
			makePolicy("c", "p", selecting(), withIngress(ingressRule(peers(ipBlockPeer("198.19.0.0/16")))))),
		sets: 0,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			m := selectors.Resolve(tc.s)
			if len(m.AddressSets) != tc.sets || len(m.ServiceSets) != tc.services {
				t.Fatalf("got %d address sets and %d service sets, want %d and %d: %+v %+v",
					len(m.AddressSets), len(m.ServiceSets), tc.sets, tc.services, m.AddressSets, m.ServiceSets)
			}
			if tc.desc != "" && m.AddressSets[0].Description != tc.desc {
				t.Errorf("description %q, want %q", m.AddressSets[0].Description, tc.desc)
			}
			assertReferenced(t, m)
			checkAgainstOracle(t, tc.s)
		})
	}
}

// assertReferenced checks that every set is used by a rule and every rule's set exists.
func assertReferenced(t *testing.T, m *selectors.Model) {
	t.Helper()
	used := map[string]bool{}
	for _, lp := range m.LocalPods {
		for _, iso := range []*selectors.Isolation{lp.Ingress, lp.Egress} {
			if iso == nil {
				continue
			}
			for _, r := range iso.Rules {
				if !r.AnyPeer {
					used[r.Peers] = true
				}
				for _, id := range r.NamedPorts {
					used[id] = true
				}
			}
		}
	}
	idPattern := regexp.MustCompile(`^[0-9a-f]{12}$`)
	for _, set := range m.AddressSets {
		if !used[set.ID] || !idPattern.MatchString(set.ID) {
			t.Errorf("address set %q unused or badly named", set.ID)
		}
		delete(used, set.ID)
	}
	for _, set := range m.ServiceSets {
		if !used[set.ID] || !idPattern.MatchString(set.ID) {
			t.Errorf("service set %q unused or badly named", set.ID)
		}
		delete(used, set.ID)
	}
	if len(used) > 0 {
		t.Errorf("rules refer to missing sets %v", used)
	}
}

// A set's name depends on its definition only, so a pod coming or going changes elements, never
// names, and the names do not change between releases unless the definition format does.
func TestSetIDsAreStable(t *testing.T) {
	s := setsSnapshot(ingressFrom("a", "p", nsPodPeer(sel("team", "red"), sel("app", "web"))))
	before := selectors.Resolve(s)
	s.Pods = append(s.Pods, makePod("b", "web2", withLabels("app", "web"), withIPs("198.18.2.3")))
	after := selectors.Resolve(s)
	if len(before.AddressSets) != 1 || len(after.AddressSets) != 1 {
		t.Fatalf("want one set: %+v %+v", before.AddressSets, after.AddressSets)
	}
	if before.AddressSets[0].ID != after.AddressSets[0].ID {
		t.Errorf("ID changed with membership: %s -> %s", before.AddressSets[0].ID, after.AddressSets[0].ID)
	}
	if reflect.DeepEqual(before.AddressSets[0].Ranges, after.AddressSets[0].Ranges) {
		t.Errorf("members did not change")
	}
	if got, want := before.AddressSets[0].ID, setIDOf("addresses", "namespaces={team=red} pods={app=web}"); got != want {
		t.Errorf("ID %s, want %s", got, want)
	}
}

func TestResolveIsDeterministic(t *testing.T) {
	s := generateCluster(benchScale{pods: 600, namespaces: 12, nodes: 6, policies: 120})
	want := selectors.Resolve(s)
	rng := rand.New(rand.NewSource(1))
	for i := range 5 {
		shuffled := *s
		shuffled.Pods = append([]selectors.Pod(nil), s.Pods...)
		shuffled.Policies = append([]*networkingv1.NetworkPolicy(nil), s.Policies...)
		shuffled.Namespaces = append([]selectors.Namespace(nil), s.Namespaces...)
		rng.Shuffle(len(shuffled.Pods), func(i, j int) { shuffled.Pods[i], shuffled.Pods[j] = shuffled.Pods[j], shuffled.Pods[i] })
		rng.Shuffle(len(shuffled.Policies), func(i, j int) {
			shuffled.Policies[i], shuffled.Policies[j] = shuffled.Policies[j], shuffled.Policies[i]
		})
		rng.Shuffle(len(shuffled.Namespaces), func(i, j int) {
			shuffled.Namespaces[i], shuffled.Namespaces[j] = shuffled.Namespaces[j], shuffled.Namespaces[i]
		})
		if got := selectors.Resolve(&shuffled); !reflect.DeepEqual(got, want) {
			t.Fatalf("shuffle %d: models differ", i)
		}
	}
	if len(want.AddressSets) == 0 || len(want.ServiceSets) == 0 {
		t.Errorf("generated cluster resolves to no sets; the test proves little")
	}
	assertReferenced(t, want)
}

// Ten thousand policies written alike must not cost ten thousand sets.
func TestManyPoliciesWithTheSamePeersShareOneSet(t *testing.T) {
	var policies []*networkingv1.NetworkPolicy
	for i := range 10000 {
		policies = append(policies, ingressFrom("a", fmt.Sprintf("p%05d", i), nsPeer(sel("team", "red")), ipBlockPeer("198.19.0.0/16")))
	}
	m := selectors.Resolve(setsSnapshot(policies...))
	if len(m.AddressSets) != 1 {
		t.Fatalf("got %d sets", len(m.AddressSets))
	}
	if got := len(m.LocalPods[0].Ingress.Rules); got != 10000 {
		t.Errorf("a/srv has %d rules, want 10000", got)
	}
}

// setIDOf is the ID format: the first 6 bytes of SHA-256 over kind, NUL, definition, in hex.
func setIDOf(kind, definition string) string {
	sum := sha256.Sum256([]byte(kind + "\x00" + definition))
	return hex.EncodeToString(sum[:6])
}
