package generator

import (
	"reflect"
	"strings"
	"testing"

	"github.com/nftpolicy/nftpolicy/selectors"
)

// small is a cluster small enough for unit tests: 2,000 pods, 400 policies, 20 local pods.
func small(tweaks ...func(*Params)) Params {
	p := Defaults(2000, 400, DistinctSelectors)
	p.LocalPods, p.Namespaces = 20, 40
	for _, tweak := range tweaks {
		tweak(&p)
	}
	return p
}

func mustGenerate(t *testing.T, p Params) *Cluster {
	t.Helper()
	c, err := Generate(p)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestGenerateIsDeterministic(t *testing.T) {
	a, b := mustGenerate(t, small()), mustGenerate(t, small())
	if !reflect.DeepEqual(a.Snapshot, b.Snapshot) {
		t.Fatal("two clusters from the same seed differ")
	}
	for range 3 {
		for _, kind := range EventKinds {
			da, err := a.Apply(kind)
			if err != nil {
				t.Fatal(err)
			}
			db, _ := b.Apply(kind)
			if da != db {
				t.Fatalf("the same event differs: %q and %q", da, db)
			}
		}
	}
	if !reflect.DeepEqual(a.Snapshot, b.Snapshot) {
		t.Fatal("two clusters from the same seed differ after the same events")
	}
	other := mustGenerate(t, small(func(p *Params) { p.Seed = 2 }))
	if reflect.DeepEqual(a.Snapshot.Policies, other.Snapshot.Policies) {
		t.Fatal("another seed gives the same policies")
	}
}

func TestGenerateSizes(t *testing.T) {
	c := mustGenerate(t, small())
	s := c.Snapshot
	if len(s.Pods) != 2000 || len(s.Policies) != 400 || len(s.Namespaces) != 40 {
		t.Fatalf("got %d pods, %d policies, %d namespaces", len(s.Pods), len(s.Policies), len(s.Namespaces))
	}
	m := selectors.Resolve(s)
	if len(m.LocalPods) != 20 {
		t.Errorf("got %d local pods, want 20", len(m.LocalPods))
	}
	if len(m.Problems) != 0 {
		t.Errorf("generated policies have problems: %v", m.Problems)
	}
	seen := map[string]bool{}
	for _, p := range s.Pods {
		if ip := p.IPs[0]; !ip.Is4() || seen[ip.String()] || !strings.HasPrefix(ip.String(), "10.") {
			t.Fatalf("pod %s/%s has address %s: not a fresh address of 10.0.0.0/8", p.Namespace, p.Name, ip)
		}
		seen[p.IPs[0].String()] = true
	}
}

// peerStats resolves a cluster and returns its count of distinct address sets and their mean size.
func peerStats(t *testing.T, p Params) (sets int, meanSize float64) {
	t.Helper()
	m := selectors.Resolve(mustGenerate(t, p).Snapshot)
	n := 0
	for _, s := range m.AddressSets {
		n += len(s.Ranges)
	}
	if len(m.AddressSets) == 0 {
		t.Fatal("no address sets")
	}
	return len(m.AddressSets), float64(n) / float64(len(m.AddressSets))
}

func TestShapes(t *testing.T) {
	_, distinct := peerStats(t, small())
	_, wide := peerStats(t, small(func(p *Params) { p.Shape = WideSelectors }))
	if wide < 2*distinct {
		t.Errorf("wide selectors match %.0f addresses per set, distinct ones %.0f: want wide >> distinct", wide, distinct)
	}
}

func TestKnobs(t *testing.T) {
	countPeers := func(p Params) (pod, ns, block, ranges, named, egress int) {
		for _, np := range mustGenerate(t, p).Snapshot.Policies {
			for _, r := range np.Spec.Ingress {
				for _, peer := range r.From {
					switch {
					case peer.IPBlock != nil:
						block++
					case peer.NamespaceSelector != nil:
						ns++
					default:
						pod++
					}
				}
				for _, port := range r.Ports {
					if port.EndPort != nil {
						ranges++
					}
					if port.Port != nil && port.Port.StrVal != "" {
						named++
					}
				}
			}
			egress += len(np.Spec.Egress)
		}
		return
	}
	pod, ns, block, ranges, named, egress := countPeers(small())
	if pod == 0 || ns == 0 || block == 0 || ranges == 0 || named == 0 || egress == 0 {
		t.Fatalf("defaults should mix every kind: pod %d ns %d ipBlock %d ranges %d named %d egress rules %d", pod, ns, block, ranges, named, egress)
	}
	pod, ns, block, ranges, named, egress = countPeers(small(func(p *Params) {
		p.NamespaceSelectorPeers, p.IPBlockPeers, p.PortRangeEvery, p.NamedPortEvery, p.EgressEvery = 0, 0, 0, 0, 0
	}))
	if ns != 0 || block != 0 || ranges != 0 || named != 0 || egress != 0 || pod != 400*2 {
		t.Fatalf("only pod selectors and numeric ports expected: pod %d ns %d ipBlock %d ranges %d named %d egress rules %d", pod, ns, block, ranges, named, egress)
	}
	if sets, _ := peerStats(t, small(func(p *Params) { p.Policies = 1600 })); sets <= func() int { s, _ := peerStats(t, small()); return s }() {
		t.Errorf("more policies should make more distinct peer sets")
	}
}

func TestEventsChangeTheSnapshot(t *testing.T) {
	c := mustGenerate(t, small())
	before := selectors.Resolve(c.Snapshot)
	for _, kind := range EventKinds {
		if _, err := c.Apply(kind); err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
	}
	if reflect.DeepEqual(before, selectors.Resolve(c.Snapshot)) {
		t.Error("a round of every event kind changed nothing in the model")
	}
	if _, err := c.Apply("no-such-event"); err == nil {
		t.Error("an unknown event kind was accepted")
	}
}

func TestTargetIsPreferred(t *testing.T) {
	c := mustGenerate(t, small())
	c.Target = func(p *selectors.Pod) bool { return p.Namespace == "ns-0003" }
	for range 20 {
		desc, err := c.Apply(PodIPChange)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(desc, "pod ns-0003/") {
			t.Fatalf("event %q changed a pod Target does not accept", desc)
		}
	}
}

func TestValidate(t *testing.T) {
	for name, tweak := range map[string]func(*Params){
		"no pods":        func(p *Params) { p.Pods = 0 },
		"too many local": func(p *Params) { p.LocalPods = p.Pods + 1 },
		"unknown shape":  func(p *Params) { p.Shape = "round" },
		"no peer kinds":  func(p *Params) { p.PodSelectorPeers, p.NamespaceSelectorPeers, p.IPBlockPeers = 0, 0, 0 },
	} {
		if _, err := Generate(small(tweak)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestClusterPolicies(t *testing.T) {
	without := mustGenerate(t, small())
	c := mustGenerate(t, small(func(p *Params) { p.ClusterPolicies = 20 }))
	if len(c.Snapshot.ClusterPolicies) != 20 || len(without.Snapshot.ClusterPolicies) != 0 {
		t.Fatalf("%d and %d cluster policies, want 20 and 0", len(c.Snapshot.ClusterPolicies), len(without.Snapshot.ClusterPolicies))
	}
	c.Snapshot.ClusterPolicies, without.Snapshot.ClusterPolicies = nil, c.Snapshot.ClusterPolicies
	if !reflect.DeepEqual(c.Snapshot, mustGenerate(t, small()).Snapshot) {
		t.Error("cluster policies changed the rest of the cluster")
	}
	c.Snapshot.ClusterPolicies = without.Snapshot.ClusterPolicies
	before := selectors.Resolve(c.Snapshot)
	if len(before.ClusterProblems) != 0 {
		t.Errorf("generated cluster policies have problems: %v", before.ClusterProblems)
	}
	subjects := 0
	for _, lp := range before.LocalPods {
		if lp.ClusterIngress != nil || lp.ClusterEgress != nil {
			subjects++
		}
	}
	if subjects == 0 {
		t.Error("no local pod is the subject of a cluster policy")
	}
	for range 5 {
		if _, err := c.Apply(ClusterPolicyEdit); err != nil {
			t.Fatal(err)
		}
		if c.Last.ClusterPolicy == nil {
			t.Fatal("a cluster policy edit did not say which policy it changed")
		}
	}
	if reflect.DeepEqual(before, selectors.Resolve(c.Snapshot)) {
		t.Error("cluster policy edits changed nothing in the model")
	}
	if _, err := mustGenerate(t, small()).Apply(ClusterPolicyEdit); err == nil {
		t.Error("a cluster policy edit on a cluster without any was accepted")
	}
}
