package selectors_test

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"

	"github.com/nftpolicy/nftpolicy/selectors"
)

func TestEligibility(t *testing.T) {
	srv := makePod("a", "srv", withLabels("app", "srv"), withIPs("198.18.1.1"))
	everyPodOfA := []*networkingv1.NetworkPolicy{
		makePolicy("a", "p", selecting(), withIngress(ingressRule(peers(podPeer(sel()))))),
	}
	runResolveCases(t, []resolveCase{{
		// A hostNetwork pod uses the node's addresses: it is neither selected nor a pod peer.
		name:     "hostNetwork pods are not selected and are not peers",
		pods:     []selectors.Pod{srv, makePod("a", "host", withIPs("198.19.0.1"), withHostNetwork())},
		policies: everyPodOfA,
		want:     []string{"a/srv ingress isolated by a/p", "a/srv ingress a/p[0] peers=198.18.1.1 ports=all"},
		conns: []connCase{
			denied(conn("198.19.0.1", "198.18.1.1", tcp, 80)),
			allowed(conn("198.18.1.1", "198.19.0.1", tcp, 80)),
		},
	}, {
		name:     "pods without an address are ignored",
		pods:     []selectors.Pod{srv, makePod("a", "pending")},
		policies: everyPodOfA,
		want:     []string{"a/srv ingress isolated by a/p", "a/srv ingress a/p[0] peers=198.18.1.1 ports=all"},
	}, {
		// A finished pod's address may already belong to a new pod.
		name: "Succeeded and Failed pods are ignored, even when their address is reused",
		pods: []selectors.Pod{srv,
			makePod("a", "done", withIPs("198.18.1.2"), inPhase(corev1.PodSucceeded)),
			makePod("a", "failed", withIPs("198.18.1.3"), inPhase(corev1.PodFailed)),
			makePod("b", "reuser", withIPs("198.18.1.2"), onNode("n2")),
		},
		policies: everyPodOfA,
		want:     []string{"a/srv ingress isolated by a/p", "a/srv ingress a/p[0] peers=198.18.1.1 ports=all"},
		conns:    []connCase{denied(conn("198.18.1.2", "198.18.1.1", tcp, 80))},
	}, {
		// Peers live anywhere in the cluster; only pods of this node are local.
		name:     "pods of other nodes are peers, not local pods",
		pods:     []selectors.Pod{srv, makePod("a", "remote", withLabels("app", "srv"), withIPs("198.18.1.4"), onNode("n2")), makePod("a", "pending-ish", withIPs("198.18.1.5"), inPhase(corev1.PodPending))},
		policies: everyPodOfA,
		want: []string{
			"a/pending-ish ingress isolated by a/p", "a/pending-ish ingress a/p[0] peers=198.18.1.1,198.18.1.4-198.18.1.5 ports=all",
			"a/srv ingress isolated by a/p", "a/srv ingress a/p[0] peers=198.18.1.1,198.18.1.4-198.18.1.5 ports=all",
		},
	}})
}

func TestLocalPods(t *testing.T) {
	s := &selectors.Snapshot{Node: testNode, Pods: []selectors.Pod{
		makePod("b", "z", withIPs("198.18.2.1", "fd18::2:1")),
		makePod("a", "y", withIPs("198.18.1.2")),
		makePod("a", "x", withIPs("198.18.1.1")),
		makePod("a", "remote", withIPs("198.18.1.3"), onNode("n2")),
		makePod("a", "host", withIPs("198.19.0.1"), withHostNetwork()),
		makePod("a", "done", withIPs("198.18.1.4"), inPhase(corev1.PodFailed)),
	}}
	m := selectors.Resolve(s)
	var got []string
	for _, lp := range m.LocalPods {
		got = append(got, lp.Key()+" "+renderAddrs(lp.IPs))
		if lp.Ingress != nil || lp.Egress != nil {
			t.Errorf("%s is isolated without any policy", lp.Key())
		}
	}
	want := []string{"a/x 198.18.1.1", "a/y 198.18.1.2", "b/z 198.18.2.1,fd18::2:1"}
	if !equalLines(got, want) {
		t.Errorf("LocalPods = %q, want %q", got, want)
	}
	if m.Node != testNode || m.AddressSets != nil || m.ServiceSets != nil || m.Problems != nil {
		t.Errorf("unexpected model %+v", m)
	}
}
