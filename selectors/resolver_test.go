package selectors_test

import (
	"reflect"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/sets"

	"github.com/nftpolicy/nftpolicy/selectors"
)

// Table tests of the Resolver. Every step of every case is also checked against a new Resolver
// loaded with the same objects by the replay; the checks here say what the case is about.

func TestResolverCases(t *testing.T) {
	for _, tc := range []struct {
		name  string
		steps func(rp *replay)
	}{{
		// A pod's key includes its namespace: "moving" is a delete and an add, and each namespace's
		// peers see their own.
		name: "a pod moving namespaces is a delete and an add",
		steps: func(rp *replay) {
			rp.SetPolicy(ingressFrom("a", "from-web-a", podPeer(sel("app", "web"))))
			rp.SetPolicy(ingressFrom("b", "from-web-b", podPeer(sel("app", "web"))))
			rp.SetPod(makePod("a", "srv", withLabels("app", "srv"), withIPs("198.18.1.1")))
			rp.SetPod(makePod("b", "srv", withLabels("app", "srv"), withIPs("198.18.2.1")))
			rp.SetPod(makePod("a", "web", withLabels("app", "web"), withIPs("198.18.1.2"), onNode("n2")))
			rp.expectPeers("a/srv", selectors.Ingress, "198.18.1.2")
			rp.expectPeers("b/srv", selectors.Ingress, "none")
			rp.DeletePod("a", "web")
			rp.SetPod(makePod("b", "web", withLabels("app", "web"), withIPs("198.18.1.2"), onNode("n2")))
			rp.expectPeers("a/srv", selectors.Ingress, "none")
			rp.expectPeers("b/srv", selectors.Ingress, "198.18.1.2")
		},
	}, {
		// Deleting a namespace object leaves its pods; namespaceSelectors then see only the name
		// label, which the API server guarantees.
		name: "a namespace deleted while its pods still exist",
		steps: func(rp *replay) {
			rp.SetNamespace(makeNamespace("b", "team", "red"))
			rp.SetPolicy(ingressFrom("a", "from-red", nsPeer(sel("team", "red"))))
			rp.SetPolicy(ingressFrom("a", "from-b-by-name", nsPeer(sel("kubernetes.io/metadata.name", "b"))))
			rp.SetPod(makePod("a", "srv", withLabels("app", "srv"), withIPs("198.18.1.1")))
			rp.SetPod(makePod("b", "web", withIPs("198.18.2.2"), onNode("n2")))
			rp.expectPeers("a/srv", selectors.Ingress, "198.18.2.2", "198.18.2.2")
			rp.DeleteNamespace("b")
			rp.expectPeers("a/srv", selectors.Ingress, "198.18.2.2", "none") // by name: from-b-by-name, from-red
			rp.SetNamespace(makeNamespace("b", "team", "red"))
			rp.expectPeers("a/srv", selectors.Ingress, "198.18.2.2", "198.18.2.2")
		},
	}, {
		// Only the policies of namespaces with a local pod are read: their problems and sets
		// appear with the first local pod and go with the last.
		name: "a policy whose namespace gets its first local pod later",
		steps: func(rp *replay) {
			rp.SetPolicy(makePolicy("c", "bad-selector", selectingExpr(expr("app", "In"))))
			rp.SetPolicy(makePolicy("c", "bad-cidr", selecting(), withIngress(ingressRule(peers(ipBlockPeer("bogus"), podPeer(sel("app", "web")))))))
			rp.SetPod(makePod("c", "web", withLabels("app", "web"), withIPs("198.18.3.2"), onNode("n2")))
			rp.expectCounts(0, 0, 0)
			rp.SetPod(makePod("c", "srv", withLabels("app", "srv"), withIPs("198.18.3.1")))
			rp.expectCounts(1, 1, 2)
			rp.expectPeers("c/srv", selectors.Ingress, "198.18.3.2")
			rp.SetPod(makePod("c", "srv", withLabels("app", "srv"), withIPs("198.18.3.1"), onNode("n2")))
			rp.expectCounts(0, 0, 0)
		},
	}, {
		// An ineligible pod is neither local (no anti-spoofing entry) nor a peer, exactly as in
		// Resolve; back to Running, it is both again.
		name: "a local pod that becomes ineligible and eligible again",
		steps: func(rp *replay) {
			rp.SetPolicy(ingressFrom("a", "from-a", podPeer(sel())))
			rp.SetPod(makePod("a", "srv", withLabels("app", "srv"), withIPs("198.18.1.1")))
			rp.SetPod(makePod("a", "job", withLabels("app", "job"), withIPs("198.18.1.3")))
			rp.expectCounts(2, 1, 0)
			rp.expectPeers("a/srv", selectors.Ingress, "198.18.1.1,198.18.1.3")
			rp.SetPod(makePod("a", "job", withLabels("app", "job"), withIPs("198.18.1.3"), inPhase(corev1.PodSucceeded)))
			rp.expectCounts(1, 1, 0)
			rp.expectPeers("a/srv", selectors.Ingress, "198.18.1.1")
			rp.SetPod(makePod("a", "job", withLabels("app", "job"), withIPs("198.18.1.3"), withHostNetwork()))
			rp.expectCounts(1, 1, 0)
			rp.SetPod(makePod("a", "job", withLabels("app", "job"), withIPs("198.18.1.3")))
			rp.expectCounts(2, 1, 0)
			rp.expectPeers("a/srv", selectors.Ingress, "198.18.1.1,198.18.1.3")
		},
	}, {
		// An address stays in a set while one member still has it: a terminated pod's address may
		// already belong to a new pod.
		name: "an address two pods share stays while one of them has it",
		steps: func(rp *replay) {
			rp.SetPolicy(ingressFrom("a", "from-web", podPeer(sel("app", "web")), ipBlockPeer("198.18.2.0/24")))
			rp.SetPod(makePod("a", "srv", withLabels("app", "srv"), withIPs("198.18.1.1")))
			rp.SetPod(makePod("a", "old", withLabels("app", "web"), withIPs("198.18.1.7"), onNode("n2")))
			rp.SetPod(makePod("a", "new", withLabels("app", "web"), withIPs("198.18.1.7"), onNode("n2")))
			rp.SetPod(makePod("a", "in-block", withLabels("app", "web"), withIPs("198.18.2.9"), onNode("n2")))
			rp.expectPeers("a/srv", selectors.Ingress, "198.18.1.7,198.18.2.0-198.18.2.255")
			rp.DeletePod("a", "old")
			rp.DeletePod("a", "in-block")
			rp.expectPeers("a/srv", selectors.Ingress, "198.18.1.7,198.18.2.0-198.18.2.255")
			rp.SetPod(makePod("a", "new", withLabels("app", "web"), withIPs("198.18.1.8"), onNode("n2")))
			rp.expectPeers("a/srv", selectors.Ingress, "198.18.1.8,198.18.2.0-198.18.2.255")
		},
	}, {
		// Egress named ports are resolved on each destination pod; a change of a peer's ports
		// changes the ServiceSet only.
		name: "a destination pod's named port changes",
		steps: func(rp *replay) {
			rp.SetPolicy(egressNamed("a", "to-web", podPeer(sel("app", "web"))))
			rp.SetPod(makePod("a", "srv", withLabels("app", "srv"), withIPs("198.18.1.1")))
			rp.SetPod(makePod("a", "web", withLabels("app", "web"), withIPs("198.18.1.2"), withPorts("http/TCP/8080"), onNode("n2")))
			rp.expectCounts(1, 1, 0)
			rp.SetPod(makePod("a", "web", withLabels("app", "web"), withIPs("198.18.1.2"), withPorts("http/TCP/8081"), onNode("n2")))
			after := modelOnly(rp.resolver)
			rp.expectChanges(nil, []string{after.ServiceSets[0].ID}, nil)
			if got := after.ServiceSets[0].Services; len(got) != 1 || got[0].Port != 8081 {
				rp.t.Errorf("services = %v, want port 8081", got)
			}
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			rp := newReplay(t)
			tc.steps(rp)
			rp.finish()
		})
	}
}

// expectPeers checks the rendered peers of each rule of a local pod's isolation in one direction.
func (rp *replay) expectPeers(key string, dir selectors.Direction, want ...string) {
	rp.t.Helper()
	m := modelOnly(rp.resolver)
	var got []string
	for _, lp := range m.LocalPods {
		iso := lp.Ingress
		if dir == selectors.Egress {
			iso = lp.Egress
		}
		if lp.Key() != key || iso == nil {
			continue
		}
		for _, r := range iso.Rules {
			for _, set := range m.AddressSets {
				if set.ID == r.Peers {
					got = append(got, renderRanges(set.Ranges))
				}
			}
		}
	}
	if !reflect.DeepEqual(got, want) {
		rp.t.Errorf("%s %s peers = %q, want %q", key, dir, got, want)
	}
}

func (rp *replay) expectCounts(localPods, addressSets, problems int) {
	rp.t.Helper()
	m := modelOnly(rp.resolver)
	if len(m.LocalPods) != localPods || len(m.AddressSets) != addressSets || len(m.Problems) != problems {
		rp.t.Errorf("local pods, address sets, problems = %d, %d, %d; want %d, %d, %d (problems %v)",
			len(m.LocalPods), len(m.AddressSets), len(m.Problems), localPods, addressSets, problems, m.Problems)
	}
}

// threeSetCluster has a local server isolated by three policies, each with its own set.
func threeSetCluster(rp *replay) {
	rp.SetNamespace(makeNamespace("b", "team", "blue"))
	rp.SetPolicy(ingressFrom("a", "from-web", podPeer(sel("app", "web"))))
	rp.SetPolicy(ingressFrom("a", "from-blue", nsPeer(sel("team", "blue"))))
	rp.SetPolicy(egressNamed("a", "to-web", podPeer(sel("app", "web"))))
	rp.SetPod(makePod("a", "srv", withLabels("app", "srv"), withIPs("198.18.1.1")))
	rp.SetPod(makePod("a", "web", withLabels("app", "web"), withIPs("198.18.1.2"), withPorts("http/TCP/8080"), onNode("n2")))
	rp.SetPod(makePod("b", "db", withLabels("app", "db"), withIPs("198.18.2.1"), onNode("n2")))
}

// The Changes of a Model name what differs from the Model before and nothing else, so that the
// layers below redo only that.
func TestResolverChangesNameOnlyWhatChanged(t *testing.T) {
	rp := newReplay(t)
	threeSetCluster(rp)
	m := modelOnly(rp.resolver)
	if len(m.AddressSets) != 2 || len(m.ServiceSets) != 1 {
		t.Fatalf("want 2 address sets and 1 service set, got %d and %d", len(m.AddressSets), len(m.ServiceSets))
	}
	idOf := func(desc string) string {
		for _, s := range m.AddressSets {
			if s.Description == desc {
				return s.ID
			}
		}
		t.Fatalf("no set %q", desc)
		return ""
	}
	blue := idOf("namespaces={team=blue} pods={}")

	t.Run("a peer event touching one set names that set only", func(t *testing.T) {
		rp.t = t
		rp.SetPod(makePod("b", "db2", withLabels("app", "db"), withIPs("198.18.2.2"), onNode("n2")))
		rp.expectChanges([]string{blue}, nil, nil)
		if got := renderRanges(setOfID(m, blue).Ranges); got != "198.18.2.1" {
			t.Errorf("the Model returned before changed: its set is now %s", got)
		}
	})
	t.Run("setting equal objects changes nothing", func(t *testing.T) {
		rp.t = t
		rp.SetPod(makePod("a", "web", withLabels("app", "web"), withIPs("198.18.1.2"), withPorts("http/TCP/8080"), onNode("n2")))
		if !rp.changes.None() {
			t.Errorf("setting an equal object changed %+v", rp.changes)
		}
		rp.SetNamespace(makeNamespace("b", "team", "blue"))
		if !rp.changes.None() {
			t.Errorf("setting an equal object changed %+v", rp.changes)
		}
		rp.SetPolicy(ingressFrom("a", "from-web", podPeer(sel("app", "web"))))
		if !rp.changes.None() {
			t.Errorf("setting an equal object changed %+v", rp.changes)
		}
	})
	t.Run("a policy edit names the policy and the pods it selects, not the sets it still uses", func(t *testing.T) {
		rp.t = t
		rp.SetPolicy(makePolicy("a", "from-web", selecting("app", "srv"), withIngress(ingressRule(peers(podPeer(sel("app", "web"))), port(tcp, 80)))))
		rp.expectChanges(nil, nil, []string{"a/srv"})
		if got := rp.changes.Policies.UnsortedList(); len(got) != 1 || got[0] != (selectors.PolicyRef{Namespace: "a", Name: "from-web"}) {
			t.Errorf("changed policies = %v, want a/from-web", got)
		}
	})
	rp.t = t
	rp.finish()
}

func setOfID(m *selectors.Model, id string) selectors.AddressSet {
	for _, s := range m.AddressSets {
		if s.ID == id {
			return s
		}
	}
	return selectors.AddressSet{}
}

// expectChanges checks the address sets, service sets and local pods that the Changes of the last
// event name, exactly.
func (rp *replay) expectChanges(addressSets, serviceSets, localPods []string) {
	rp.t.Helper()
	c := rp.changes
	if c.Full {
		rp.t.Fatalf("Changes are Full")
	}
	for _, part := range []struct {
		name      string
		got, want []string
	}{
		{"address sets", sets.List(c.AddressSets), addressSets},
		{"service sets", sets.List(c.ServiceSets), serviceSets},
		{"local pods", sets.List(c.LocalPods), localPods},
	} {
		if len(part.got) != 0 || len(part.want) != 0 {
			if !slices.Equal(part.got, part.want) {
				rp.t.Errorf("changed %s = %q, want %q", part.name, part.got, part.want)
			}
		}
	}
}
