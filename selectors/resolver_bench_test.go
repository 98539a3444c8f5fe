package selectors_test

import (
	"fmt"
	"maps"
	"math/rand"
	"net/netip"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"

	"github.com/nftpolicy/nftpolicy/selectors"
)

// Benchmarks of one event and the Model after it, at two cluster sizes with the same number of
// policies and of local pods: the cost of a peer event must not follow the number of pods.
// BenchmarkResolverFullResolve is what the same Model costs from scratch at those sizes.

var resolverScales = []struct {
	name  string
	scale benchScale
}{
	{"pods=25k/policies=10k", benchScale{pods: 25000, namespaces: 500, nodes: 228, policies: 10000}},
	{"pods=50k/policies=10k", fullScale},
}

// clusterPolicyScales add ClusterNetworkPolicies to the full scale.
var clusterPolicyScales = []struct {
	name  string
	scale benchScale
}{
	{"pods=50k/policies=10k/cnps=100", withClusterPolicies(fullScale, 100)},
}

func withClusterPolicies(sc benchScale, n int) benchScale {
	sc.clusterPolicies = n
	return sc
}

// benchCluster is a generated cluster loaded into a Resolver, kept across benchmarks: every event
// ring below leaves it as it found it after each pair of events.
type benchCluster struct {
	snapshot *selectors.Snapshot
	resolver *selectors.Resolver
}

var benchClusters = map[benchScale]*benchCluster{}

func loadedCluster(sc benchScale) *benchCluster {
	if bc, ok := benchClusters[sc]; ok {
		return bc
	}
	s := generateCluster(sc)
	bc := &benchCluster{snapshot: s, resolver: loadResolver(s)}
	benchClusters[sc] = bc
	return bc
}

func loadResolver(s *selectors.Snapshot) *selectors.Resolver {
	r := selectors.NewResolver(s.Node)
	r.Load(s)
	r.Model()
	return r
}

// setEvent sets one object: a pod, a namespace, a policy or a cluster policy.
type setEvent struct {
	pod           *selectors.Pod
	namespace     *selectors.Namespace
	policy        *networkingv1.NetworkPolicy
	clusterPolicy *v1beta1.ClusterNetworkPolicy
}

// objectSetter is what takes events: a Resolver, or a test's replay of one.
type objectSetter interface {
	SetPod(selectors.Pod)
	SetNamespace(selectors.Namespace)
	SetPolicy(*networkingv1.NetworkPolicy)
	SetClusterPolicy(*v1beta1.ClusterNetworkPolicy)
}

var (
	_ objectSetter = (*selectors.Resolver)(nil)
	_ objectSetter = (*replay)(nil)
)

func (e setEvent) apply(to objectSetter) {
	switch {
	case e.pod != nil:
		to.SetPod(*e.pod)
	case e.namespace != nil:
		to.SetNamespace(*e.namespace)
	case e.clusterPolicy != nil:
		to.SetClusterPolicy(e.clusterPolicy)
	default:
		to.SetPolicy(e.policy)
	}
}

// benchEvents runs a ring of events, each alone ("event") and followed by Model ("event+model"),
// at every scale. Events come in pairs, the second undoing the first.
func benchEvents(b *testing.B, ring func(s *selectors.Snapshot) []setEvent) {
	benchEventsAt(b, resolverScales, ring)
}

func benchEventsAt(b *testing.B, scales []struct {
	name  string
	scale benchScale
}, ring func(s *selectors.Snapshot) []setEvent) {
	for _, sc := range scales {
		b.Run(sc.name, func(b *testing.B) {
			bc := loadedCluster(sc.scale)
			events := ring(bc.snapshot)
			for _, withModel := range []bool{true, false} {
				name := "event"
				if withModel {
					name = "event+model"
				}
				b.Run(name, func(b *testing.B) {
					r := bc.resolver
					b.ReportAllocs()
					i := 0
					for b.Loop() {
						events[i%len(events)].apply(r)
						if withModel {
							r.Model()
						}
						i++
					}
					b.StopTimer()
					if i%2 == 1 { // back to the loaded cluster
						events[i%len(events)].apply(r)
					}
					r.Model()
				})
			}
		})
	}
}

// remotePods picks pods of other nodes, the same ones in every run.
func remotePods(s *selectors.Snapshot, n int) []selectors.Pod {
	rng := rand.New(rand.NewSource(1))
	var out []selectors.Pod
	for len(out) < n {
		if p := s.Pods[rng.Intn(len(s.Pods))]; p.Node != s.Node {
			out = append(out, p)
		}
	}
	return out
}

// podRing sets each pod changed, then as it was.
func podRing(pods []selectors.Pod, change func(selectors.Pod) selectors.Pod) []setEvent {
	var ring []setEvent
	for _, p := range pods {
		changed := change(p)
		ring = append(ring, setEvent{pod: &changed}, setEvent{pod: &p})
	}
	return ring
}

// podRelabelRing: a peer pod's app label changes, flipping the peers that select by app in its
// namespace and across namespaces.
func podRelabelRing(s *selectors.Snapshot) []setEvent {
	return podRing(remotePods(s, 500), func(p selectors.Pod) selectors.Pod {
		p.Labels = maps.Clone(p.Labels)
		p.Labels["app"] = "app-" + fmt.Sprint((p.Labels["app"][len("app-")]-'0'+1)%7)
		return p
	})
}

// podIPChangeRing: a peer pod gets another address, as a pod recreated under the same name does.
func podIPChangeRing(s *selectors.Snapshot) []setEvent {
	i := 0
	return podRing(remotePods(s, 500), func(p selectors.Pod) selectors.Pod {
		i++
		p.IPs = slices.Clone(p.IPs)
		p.IPs[0] = netip.AddrFrom4([4]byte{198, 19, byte(i >> 8), byte(i)})
		return p
	})
}

// namespaceRelabelRing: a namespace changes team, flipping the team's namespaceSelectors for
// every pod of the namespace.
func namespaceRelabelRing(s *selectors.Snapshot) []setEvent {
	var ring []setEvent
	for i, ns := range s.Namespaces[:min(50, len(s.Namespaces))] {
		changed := selectors.Namespace{Name: ns.Name, Labels: maps.Clone(ns.Labels)}
		changed.Labels["team"] = fmt.Sprintf("team-%d", (i+1)%5)
		ring = append(ring, setEvent{namespace: &changed}, setEvent{namespace: &ns})
	}
	return ring
}

// policyEditRing: a policy of a namespace with local pods gets one more port, so that the
// namespace's local pods are re-resolved.
func policyEditRing(s *selectors.Snapshot) []setEvent {
	withLocal := make(map[string]bool)
	for i := range s.Pods {
		if p := &s.Pods[i]; p.Node == s.Node && !p.HostNetwork && len(p.IPs) > 0 && p.Phase != corev1.PodSucceeded && p.Phase != corev1.PodFailed {
			withLocal[s.Pods[i].Namespace] = true
		}
	}
	var ring []setEvent
	for _, np := range s.Policies {
		if !withLocal[np.Namespace] || len(np.Spec.Ingress) == 0 || len(ring) == 200 {
			continue
		}
		changed := np.DeepCopy()
		changed.Spec.Ingress[0].Ports = append(changed.Spec.Ingress[0].Ports, networkingv1.NetworkPolicyPort{Port: ptr(intstr.FromInt32(7777))})
		ring = append(ring, setEvent{policy: changed}, setEvent{policy: np})
	}
	return ring
}

// clusterPolicyEditRing: a ClusterNetworkPolicy's priority changes (which reorders its tier) or
// its first rule's action flips between Accept and Deny.
func clusterPolicyEditRing(s *selectors.Snapshot) []setEvent {
	var ring []setEvent
	for i, cnp := range s.ClusterPolicies {
		changed := cnp.DeepCopy()
		switch {
		case i%2 == 0:
			changed.Spec.Priority = (changed.Spec.Priority + 37) % 100
		case len(changed.Spec.Ingress) > 0:
			changed.Spec.Ingress[0].Action = flipAction(changed.Spec.Ingress[0].Action)
		default:
			changed.Spec.Egress[0].Action = flipAction(changed.Spec.Egress[0].Action)
		}
		ring = append(ring, setEvent{clusterPolicy: changed}, setEvent{clusterPolicy: cnp})
	}
	return ring
}

func flipAction(a v1beta1.ClusterNetworkPolicyRuleAction) v1beta1.ClusterNetworkPolicyRuleAction {
	if a == v1beta1.ClusterNetworkPolicyRuleActionAccept {
		return v1beta1.ClusterNetworkPolicyRuleActionDeny
	}
	return v1beta1.ClusterNetworkPolicyRuleActionAccept
}

// The ClusterNetworkPolicy benchmarks: an edit of one, and a namespace relabel that also moves the
// namespace's pods in and out of subjects and peers selected by team.
func BenchmarkResolverClusterPolicyEdit(b *testing.B) {
	benchEventsAt(b, clusterPolicyScales, clusterPolicyEditRing)
}

func BenchmarkResolverNamespaceRelabelWithClusterPolicies(b *testing.B) {
	benchEventsAt(b, clusterPolicyScales, namespaceRelabelRing)
}

func BenchmarkResolverPodRelabel(b *testing.B)       { benchEvents(b, podRelabelRing) }
func BenchmarkResolverPodIPChange(b *testing.B)      { benchEvents(b, podIPChangeRing) }
func BenchmarkResolverNamespaceRelabel(b *testing.B) { benchEvents(b, namespaceRelabelRing) }
func BenchmarkResolverPolicyEdit(b *testing.B)       { benchEvents(b, policyEditRing) }

// BenchmarkResolverFullResolve is Resolve at the scales above, for comparison.
func BenchmarkResolverFullResolve(b *testing.B) {
	for _, sc := range resolverScales {
		b.Run(sc.name, func(b *testing.B) {
			s := loadedCluster(sc.scale).snapshot
			var m *selectors.Model
			b.ReportAllocs()
			for b.Loop() {
				m = selectors.Resolve(s)
			}
			b.ReportMetric(float64(len(m.LocalPods)), "localpods")
			b.ReportMetric(float64(len(m.AddressSets)), "addrsets")
			b.ReportMetric(float64(len(m.ServiceSets)), "svcsets")
		})
	}
}

// BenchmarkResolverLoad is the initial sync: every object set on a new Resolver, then Model.
func BenchmarkResolverLoad(b *testing.B) {
	for _, sc := range resolverScales {
		b.Run(sc.name, func(b *testing.B) {
			s := loadedCluster(sc.scale).snapshot
			b.ReportAllocs()
			for b.Loop() {
				loadResolver(s)
			}
		})
	}
}
