package selectors_test

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"

	"github.com/nftpolicy/nftpolicy/selectors"
)

// replay drives a Resolver through events and, after each, checks its Model against that of a new
// Resolver loaded with the same objects (the test keeps its own record of them), checks that the
// Changes name everything that differs from the Model before, and that no Model handed out is
// ever written afterwards.
type replay struct {
	t          *testing.T
	node       string
	resolver   *selectors.Resolver
	pods       map[string]selectors.Pod
	namespaces map[string]selectors.Namespace
	policies   map[selectors.PolicyRef]*networkingv1.NetworkPolicy
	cnps       map[string]*v1beta1.ClusterNetworkPolicy
	events     []string          // so far, for failure messages
	models     []savedModel      // every Model handed out, with a copy, to check that none changes
	changes    selectors.Changes // returned with the last Model
}

type savedModel struct {
	model, copied *selectors.Model
	after         string
}

func newReplay(t *testing.T) *replay { return newReplayOn(t, testNode) }

func newReplayOn(t *testing.T, node string) *replay {
	return &replay{
		t:          t,
		node:       node,
		resolver:   selectors.NewResolver(node),
		pods:       make(map[string]selectors.Pod),
		namespaces: make(map[string]selectors.Namespace),
		policies:   make(map[selectors.PolicyRef]*networkingv1.NetworkPolicy),
		cnps:       make(map[string]*v1beta1.ClusterNetworkPolicy),
	}
}

func (rp *replay) SetPod(p selectors.Pod) {
	rp.pods[p.Namespace+"/"+p.Name] = p
	rp.resolver.SetPod(p)
	rp.check(fmt.Sprintf("SetPod %s/%s labels=%v ips=%v node=%s phase=%s hostNetwork=%v ports=%v",
		p.Namespace, p.Name, p.Labels, p.IPs, p.Node, p.Phase, p.HostNetwork, p.Ports))
}

func (rp *replay) DeletePod(namespace, name string) {
	delete(rp.pods, namespace+"/"+name)
	rp.resolver.DeletePod(namespace, name)
	rp.check(fmt.Sprintf("DeletePod %s/%s", namespace, name))
}

func (rp *replay) SetNamespace(ns selectors.Namespace) {
	rp.namespaces[ns.Name] = ns
	rp.resolver.SetNamespace(ns)
	rp.check(fmt.Sprintf("SetNamespace %s labels=%v", ns.Name, ns.Labels))
}

func (rp *replay) DeleteNamespace(name string) {
	delete(rp.namespaces, name)
	rp.resolver.DeleteNamespace(name)
	rp.check("DeleteNamespace " + name)
}

func (rp *replay) SetPolicy(np *networkingv1.NetworkPolicy) {
	rp.policies[selectors.PolicyRef{Namespace: np.Namespace, Name: np.Name}] = np
	rp.resolver.SetPolicy(np)
	rp.check(fmt.Sprintf("SetPolicy %s/%s %+v", np.Namespace, np.Name, np.Spec))
}

func (rp *replay) DeletePolicy(namespace, name string) {
	delete(rp.policies, selectors.PolicyRef{Namespace: namespace, Name: name})
	rp.resolver.DeletePolicy(namespace, name)
	rp.check(fmt.Sprintf("DeletePolicy %s/%s", namespace, name))
}

func (rp *replay) SetClusterPolicy(cnp *v1beta1.ClusterNetworkPolicy) {
	rp.cnps[cnp.Name] = cnp
	rp.resolver.SetClusterPolicy(cnp)
	rp.check(fmt.Sprintf("SetClusterPolicy %s %+v", cnp.Name, cnp.Spec))
}

func (rp *replay) DeleteClusterPolicy(name string) {
	delete(rp.cnps, name)
	rp.resolver.DeleteClusterPolicy(name)
	rp.check("DeleteClusterPolicy " + name)
}

// load sets every object of a snapshot at once.
func (rp *replay) load(s *selectors.Snapshot) {
	for _, ns := range s.Namespaces {
		rp.namespaces[ns.Name] = ns
	}
	for _, np := range s.Policies {
		rp.policies[selectors.PolicyRef{Namespace: np.Namespace, Name: np.Name}] = np
	}
	for _, p := range s.Pods {
		rp.pods[p.Namespace+"/"+p.Name] = p
	}
	for _, cnp := range s.ClusterPolicies {
		rp.cnps[cnp.Name] = cnp
	}
	rp.resolver.Load(s)
	rp.check(fmt.Sprintf("Load of %d pods, %d namespaces, %d policies and %d cluster policies",
		len(s.Pods), len(s.Namespaces), len(s.Policies), len(s.ClusterPolicies)))
}

// snapshot holds the recorded objects, in a shuffled-enough order: Load must not care.
func (rp *replay) snapshot() *selectors.Snapshot {
	s := &selectors.Snapshot{Node: rp.node}
	for _, p := range rp.pods {
		s.Pods = append(s.Pods, p)
	}
	for _, ns := range rp.namespaces {
		s.Namespaces = append(s.Namespaces, ns)
	}
	for _, np := range rp.policies {
		s.Policies = append(s.Policies, np)
	}
	for _, cnp := range rp.cnps {
		s.ClusterPolicies = append(s.ClusterPolicies, cnp)
	}
	return s
}

// freshModel is the Model of a new Resolver loaded with a snapshot: what a Resolver updated event
// by event must equal.
func freshModel(s *selectors.Snapshot) *selectors.Model {
	r := selectors.NewResolver(s.Node)
	r.Load(s)
	m, _ := r.Model()
	return m
}

func (rp *replay) check(event string) {
	rp.t.Helper()
	rp.events = append(rp.events, event)
	got, changes := rp.resolver.Model()
	rp.changes = changes
	want := freshModel(rp.snapshot())
	if !reflect.DeepEqual(got, want) {
		rp.t.Fatalf("after %d events, the last %s:\n%s\nevents:\n  %s", len(rp.events), event, diffModels(got, want), strings.Join(rp.events, "\n  "))
	}
	if n := len(rp.models); n > 0 {
		if err := checkChanges(rp.models[n-1].copied, got, changes); err != nil {
			rp.t.Fatalf("after %s: %v\nevents:\n  %s", event, err, strings.Join(rp.events, "\n  "))
		}
		rp.checkIntact(rp.models[n-1])
	} else if !changes.Full {
		rp.t.Fatalf("the first Model's Changes are not Full: %+v", changes)
	}
	rp.models = append(rp.models, savedModel{model: got, copied: copyModel(got), after: event})
}

// checkIntact checks that a Model handed out is as it was when handed out: a Model is never
// written afterwards, whatever the Resolver did since.
func (rp *replay) checkIntact(saved savedModel) {
	rp.t.Helper()
	if !reflect.DeepEqual(saved.model, saved.copied) {
		rp.t.Fatalf("the Model returned after %s changed since:\n%s", saved.after, diffModels(saved.model, saved.copied))
	}
}

// finish checks that every Model handed out is still intact.
func (rp *replay) finish() {
	rp.t.Helper()
	for _, saved := range rp.models {
		rp.checkIntact(saved)
	}
}

// copyModel is a deep copy that keeps nil and empty slices apart.
func copyModel(m *selectors.Model) *selectors.Model {
	c := &selectors.Model{Node: m.Node, Problems: slices.Clone(m.Problems), ClusterProblems: slices.Clone(m.ClusterProblems)}
	if m.LocalPods != nil {
		c.LocalPods = make([]selectors.LocalPod, len(m.LocalPods))
	}
	for i, lp := range m.LocalPods {
		lp.IPs = slices.Clone(lp.IPs)
		lp.Ingress, lp.Egress = copyIsolation(lp.Ingress), copyIsolation(lp.Egress)
		lp.AuditIngress, lp.AuditEgress = copyIsolation(lp.AuditIngress), copyIsolation(lp.AuditEgress)
		lp.ClusterIngress, lp.ClusterEgress = copyClusterRules(lp.ClusterIngress), copyClusterRules(lp.ClusterEgress)
		c.LocalPods[i] = lp
	}
	c.AddressSets = slices.Clone(m.AddressSets)
	for i := range c.AddressSets {
		c.AddressSets[i].Ranges = slices.Clone(c.AddressSets[i].Ranges)
	}
	c.ServiceSets = slices.Clone(m.ServiceSets)
	for i := range c.ServiceSets {
		c.ServiceSets[i].Services = slices.Clone(c.ServiceSets[i].Services)
	}
	return c
}

func copyIsolation(iso *selectors.Isolation) *selectors.Isolation {
	if iso == nil {
		return nil
	}
	c := &selectors.Isolation{Policies: slices.Clone(iso.Policies), Rules: slices.Clone(iso.Rules)}
	for i := range c.Rules {
		c.Rules[i].Ports = slices.Clone(c.Rules[i].Ports)
		c.Rules[i].NamedPorts = slices.Clone(c.Rules[i].NamedPorts)
	}
	return c
}

func copyClusterRules(cr *selectors.ClusterRules) *selectors.ClusterRules {
	if cr == nil {
		return nil
	}
	c := &selectors.ClusterRules{Admin: slices.Clone(cr.Admin), Baseline: slices.Clone(cr.Baseline)}
	for _, rules := range [][]selectors.ClusterRule{c.Admin, c.Baseline} {
		for i := range rules {
			rules[i].Ports = slices.Clone(rules[i].Ports)
			rules[i].NamedPorts = slices.Clone(rules[i].NamedPorts)
		}
	}
	return c
}

// diffModels says, part by part, what one Model has that the other does not.
func diffModels(got, want *selectors.Model) string {
	var b strings.Builder
	if got.Node != want.Node {
		fmt.Fprintf(&b, "Node: got %q, want %q\n", got.Node, want.Node)
	}
	diffPart(&b, "LocalPods", got.LocalPods, want.LocalPods, formatLocalPod)
	diffPart(&b, "AddressSets", got.AddressSets, want.AddressSets, func(s selectors.AddressSet) string {
		return fmt.Sprintf("%s %q hasIPBlocks=%v [%s]", s.ID, s.Description, s.HasIPBlocks, renderRanges(s.Ranges))
	})
	diffPart(&b, "ServiceSets", got.ServiceSets, want.ServiceSets, func(s selectors.ServiceSet) string {
		return fmt.Sprintf("%s %q %v", s.ID, s.Description, s.Services)
	})
	diffPart(&b, "Problems", got.Problems, want.Problems, selectors.Problem.String)
	diffPart(&b, "ClusterProblems", got.ClusterProblems, want.ClusterProblems, selectors.Problem.String)
	return b.String()
}

func diffPart[T any](b *strings.Builder, name string, got, want []T, format func(T) string) {
	if reflect.DeepEqual(got, want) {
		return
	}
	gotLines, wantLines := formatAll(got, format), formatAll(want, format)
	fmt.Fprintf(b, "%s differ (- want, + got):\n", name)
	const most = 10 // lines of each side
	printed := 0
	for _, l := range wantLines {
		if !slices.Contains(gotLines, l) && printed < most {
			fmt.Fprintf(b, "  - %s\n", l)
			printed++
		}
	}
	printed = 0
	for _, l := range gotLines {
		if !slices.Contains(wantLines, l) && printed < most {
			fmt.Fprintf(b, "  + %s\n", l)
			printed++
		}
	}
	if slices.Equal(gotLines, wantLines) {
		fmt.Fprintf(b, "  (equal when printed: nil against empty, or order)\n  - %#v\n  + %#v\n", want, got)
	}
}

func formatAll[T any](xs []T, format func(T) string) []string {
	if xs == nil {
		return []string{"<nil slice>"}
	}
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = format(x)
	}
	return out
}

func formatLocalPod(lp selectors.LocalPod) string {
	return fmt.Sprintf("%s ips=%v ingress=%s egress=%s auditIngress=%s auditEgress=%s clusterIngress=%s clusterEgress=%s",
		lp.Key(), lp.IPs, formatIsolation(lp.Ingress), formatIsolation(lp.Egress), formatIsolation(lp.AuditIngress), formatIsolation(lp.AuditEgress),
		formatClusterRules(lp.ClusterIngress), formatClusterRules(lp.ClusterEgress))
}

func formatClusterRules(cr *selectors.ClusterRules) string {
	if cr == nil {
		return "none"
	}
	return fmt.Sprintf("{admin=%+v baseline=%+v}", cr.Admin, cr.Baseline)
}

func formatIsolation(iso *selectors.Isolation) string {
	if iso == nil {
		return "none"
	}
	return fmt.Sprintf("{policies=%v rules=%+v}", iso.Policies, iso.Rules)
}

// Random events. Each builds fresh objects: the Resolver keeps what it is given.

func (rp *replay) randomEvent(c *chooser) {
	switch c.pick(23) {
	case 0, 1, 2:
		rp.SetPod(randomPod(c, c.pick(6)))
	case 3:
		if p, ok := rp.anyPod(c); ok {
			rp.DeletePod(p.Namespace, p.Name)
		}
	case 4, 5, 6, 7, 8, 9:
		if p, ok := rp.anyPod(c); ok {
			rp.SetPod(changePod(c, p))
		}
	case 10:
		if p, ok := rp.anyPod(c); ok {
			// A pod that "moves" namespace is another pod: delete and add.
			rp.DeletePod(p.Namespace, p.Name)
			p.Namespace = fuzzNamespaces[c.pick(len(fuzzNamespaces))]
			rp.SetPod(p)
		}
	case 11:
		rp.SetNamespace(selectors.Namespace{Name: fuzzNamespaces[c.pick(len(fuzzNamespaces))], Labels: randomLabels(c)})
	case 12:
		rp.DeleteNamespace(fuzzNamespaces[c.pick(len(fuzzNamespaces))])
	case 13, 14:
		rp.SetPolicy(randomPolicy(c, fmt.Sprintf("np%d", c.pick(5))))
	case 15:
		if np, ok := rp.anyPolicy(c); ok {
			rp.SetPolicy(editPolicy(c, np))
		}
	case 16:
		if np, ok := rp.anyPolicy(c); ok {
			rp.DeletePolicy(np.Namespace, np.Name)
		}
	case 17:
		rp.sameAgain(c)
	case 18, 19:
		rp.SetClusterPolicy(randomClusterPolicy(c, fmt.Sprintf("cnp%d", c.pick(4))))
	case 20, 21:
		if cnp, ok := rp.anyClusterPolicy(c); ok {
			rp.SetClusterPolicy(editClusterPolicy(c, cnp))
		}
	case 22:
		if cnp, ok := rp.anyClusterPolicy(c); ok {
			rp.DeleteClusterPolicy(cnp.Name)
		}
	}
}

// sameAgain sets a copy of an object that is held: nothing changes.
func (rp *replay) sameAgain(c *chooser) {
	rp.changes = selectors.Changes{}
	switch c.pick(4) {
	case 3:
		if cnp, ok := rp.anyClusterPolicy(c); ok {
			rp.SetClusterPolicy(cnp.DeepCopy())
		}
	case 0:
		if p, ok := rp.anyPod(c); ok {
			p.Labels, p.IPs, p.Ports = maps.Clone(p.Labels), slices.Clone(p.IPs), slices.Clone(p.Ports)
			rp.SetPod(p)
		}
	case 1:
		if np, ok := rp.anyPolicy(c); ok {
			rp.SetPolicy(np.DeepCopy())
		}
	case 2:
		if names := sortedKeys(rp.namespaces); len(names) > 0 {
			ns := rp.namespaces[names[c.pick(len(names))]]
			rp.SetNamespace(selectors.Namespace{Name: ns.Name, Labels: maps.Clone(ns.Labels)})
		}
	}
	if !rp.changes.None() {
		rp.t.Fatalf("setting an object equal to the one held changed %+v", rp.changes)
	}
}

func (rp *replay) anyPod(c *chooser) (selectors.Pod, bool) {
	keys := sortedKeys(rp.pods)
	if len(keys) == 0 {
		return selectors.Pod{}, false
	}
	return rp.pods[keys[c.pick(len(keys))]], true
}

func (rp *replay) anyPolicy(c *chooser) (*networkingv1.NetworkPolicy, bool) {
	refs := slices.SortedFunc(maps.Keys(rp.policies), func(a, b selectors.PolicyRef) int { return strings.Compare(a.String(), b.String()) })
	if len(refs) == 0 {
		return nil, false
	}
	return rp.policies[refs[c.pick(len(refs))]], true
}

func (rp *replay) anyClusterPolicy(c *chooser) (*v1beta1.ClusterNetworkPolicy, bool) {
	names := sortedKeys(rp.cnps)
	if len(names) == 0 {
		return nil, false
	}
	return rp.cnps[names[c.pick(len(names))]], true
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

// changePod changes one thing of a pod: labels, addresses, phase, node, hostNetwork or ports.
func changePod(c *chooser, p selectors.Pod) selectors.Pod {
	p.Labels, p.IPs, p.Ports = maps.Clone(p.Labels), slices.Clone(p.IPs), slices.Clone(p.Ports)
	switch c.pick(6) {
	case 0:
		p.Labels = randomLabels(c)
	case 1:
		// Another address, possibly one another pod has (addresses are reused).
		p.IPs = randomPod(c, c.pick(6)).IPs
	case 2:
		p.Phase = []corev1.PodPhase{"Pending", "Running", "Succeeded", "Failed"}[c.pick(4)]
	case 3:
		p.Node = []string{testNode, "n2"}[c.pick(2)]
	case 4:
		p.HostNetwork = !p.HostNetwork
	case 5:
		p.Ports = randomContainerPorts(c)
	}
	return p
}

// editPolicy changes one thing of a held policy, or replaces it by a random one of the same name.
func editPolicy(c *chooser, np *networkingv1.NetworkPolicy) *networkingv1.NetworkPolicy {
	edited := np.DeepCopy()
	switch c.pick(4) {
	case 0:
		edited.Spec.PodSelector = *randomSelector(c)
	case 1:
		edited.Spec.Ingress = append(edited.Spec.Ingress, ingressRule(randomPeers(c), randomPorts(c)...))
	case 2:
		edited.Spec.Egress = append(edited.Spec.Egress, egressRule(randomPeers(c), randomPorts(c)...))
	case 3:
		edited = randomPolicy(c, np.Name)
		edited.Namespace = np.Namespace
	}
	return edited
}

// editClusterPolicy changes one thing of a held ClusterNetworkPolicy (its priority, tier, subject,
// a rule's action, a rule more), or replaces it by a random one of the same name.
func editClusterPolicy(c *chooser, cnp *v1beta1.ClusterNetworkPolicy) *v1beta1.ClusterNetworkPolicy {
	edited := cnp.DeepCopy()
	switch c.pick(6) {
	case 0:
		edited.Spec.Priority = int32(c.pick(3))
	case 1:
		edited.Spec.Tier = []v1beta1.Tier{v1beta1.AdminTier, v1beta1.BaselineTier}[c.pick(2)]
	case 2:
		edited.Spec.Subject = randomClusterPolicy(c, cnp.Name).Spec.Subject
	case 3:
		if n := len(edited.Spec.Ingress); n > 0 {
			edited.Spec.Ingress[c.pick(n)].Action = cnpActions[c.pick(len(cnpActions))]
		} else if n := len(edited.Spec.Egress); n > 0 {
			edited.Spec.Egress[c.pick(n)].Action = cnpActions[c.pick(len(cnpActions))]
		}
	case 4:
		other := randomClusterPolicy(c, cnp.Name)
		edited.Spec.Ingress = append(edited.Spec.Ingress, other.Spec.Ingress...)
		edited.Spec.Egress = append(other.Spec.Egress, edited.Spec.Egress...)
	case 5:
		edited = randomClusterPolicy(c, cnp.Name)
	}
	return edited
}

// replayRandom loads a random cluster object by object, then plays random events.
func replayRandom(t *testing.T, c *chooser, events int) {
	t.Helper()
	rp := newReplay(t)
	s := randomSnapshot(c)
	for i := range c.pick(4) {
		s.ClusterPolicies = append(s.ClusterPolicies, randomClusterPolicy(c, fmt.Sprintf("cnp%d", i)))
	}
	if c.coin() {
		rp.load(s)
	} else {
		// Object by object, in an order Load does not use, checking after each.
		for i := range s.Pods {
			setEvent{pod: &s.Pods[i]}.apply(rp)
		}
		for _, np := range s.Policies {
			setEvent{policy: np}.apply(rp)
		}
		for _, cnp := range s.ClusterPolicies {
			rp.SetClusterPolicy(cnp)
		}
		for i := range s.Namespaces {
			setEvent{namespace: &s.Namespaces[i]}.apply(rp)
		}
	}
	for range events {
		rp.randomEvent(c)
	}
	rp.finish()
}

// FuzzResolverMatchesAFreshLoad: after every event of a random sequence, the Resolver's Model is
// deeply equal to that of a new Resolver loaded with the same objects, and Changes name every
// difference from the Model before. Plain `go test` runs the seeds.
func FuzzResolverMatchesAFreshLoad(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte("pods come and go while policies change"))
	for _, b := range randomSeeds(11, 150, 512) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c := &chooser{data: data}
		replayRandom(t, c, 40)
	})
}

// TestResolverMatchesAFreshLoad is the same property over longer sequences of events.
func TestResolverMatchesAFreshLoad(t *testing.T) {
	for i, b := range randomSeeds(3, 40, 4096) {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			replayRandom(t, &chooser{data: b}, 150)
		})
	}
}

// TestResolverMatchesAFreshLoadOnGeneratedCluster replays the benchmarks' events on a small generated
// cluster: bigger sets and more policies than the random ones.
func TestResolverMatchesAFreshLoadOnGeneratedCluster(t *testing.T) {
	s := generateCluster(benchScale{pods: 800, namespaces: 10, nodes: 10, policies: 150, clusterPolicies: 20})
	rp := newReplayOn(t, s.Node)
	rp.load(s)
	subjects := 0
	for _, lp := range modelOnly(rp.resolver).LocalPods {
		if lp.ClusterIngress != nil || lp.ClusterEgress != nil {
			subjects++
		}
	}
	if subjects == 0 {
		t.Fatal("no local pod is the subject of a generated ClusterNetworkPolicy")
	}
	for _, ring := range []func(*selectors.Snapshot) []setEvent{podRelabelRing, podIPChangeRing, namespaceRelabelRing, policyEditRing, clusterPolicyEditRing} {
		for _, e := range ring(s)[:8] {
			e.apply(rp)
		}
	}
	rp.finish()
}

// modelOnly is r.Model() without its Changes.
func modelOnly(r *selectors.Resolver) *selectors.Model {
	m, _ := r.Model()
	return m
}

// checkChanges checks that Changes name every part in which cur differs from prev (a layer below
// skips what they do not name), and, for sets and local pods, nothing else.
func checkChanges(prev, cur *selectors.Model, c selectors.Changes) error {
	if c.Full {
		return nil
	}
	var missed []string
	addressSets := func(m *selectors.Model) map[string]selectors.AddressSet {
		out := map[string]selectors.AddressSet{}
		for _, s := range m.AddressSets {
			out[s.ID] = s
		}
		return out
	}
	serviceSets := func(m *selectors.Model) map[string]selectors.ServiceSet {
		out := map[string]selectors.ServiceSet{}
		for _, s := range m.ServiceSets {
			out[s.ID] = s
		}
		return out
	}
	localPods := func(m *selectors.Model) map[string]selectors.LocalPod {
		out := map[string]selectors.LocalPod{}
		for _, p := range m.LocalPods {
			out[p.Key()] = p
		}
		return out
	}
	pa, ca := addressSets(prev), addressSets(cur)
	for id := range joinKeys(pa, ca) {
		if !reflect.DeepEqual(pa[id], ca[id]) && !c.AddressSets.Has(id) {
			missed = append(missed, "address set "+id)
		}
	}
	ps, cs := serviceSets(prev), serviceSets(cur)
	for id := range joinKeys(ps, cs) {
		if !reflect.DeepEqual(ps[id], cs[id]) && !c.ServiceSets.Has(id) {
			missed = append(missed, "service set "+id)
		}
	}
	pl, cl := localPods(prev), localPods(cur)
	for key := range joinKeys(pl, cl) {
		if !reflect.DeepEqual(pl[key], cl[key]) && !c.LocalPods.Has(key) {
			missed = append(missed, "local pod "+key)
		}
	}
	if !reflect.DeepEqual(prev.Problems, cur.Problems) && !c.Problems {
		missed = append(missed, "problems")
	}
	if !reflect.DeepEqual(prev.ClusterProblems, cur.ClusterProblems) && !c.ClusterProblems {
		missed = append(missed, "cluster problems")
	}
	// Nor do they name a set or a local pod that is equal in both: the layers below would redo it
	// for nothing.
	var extra []string
	for id := range c.AddressSets {
		if reflect.DeepEqual(pa[id], ca[id]) {
			extra = append(extra, "address set "+id)
		}
	}
	for id := range c.ServiceSets {
		if reflect.DeepEqual(ps[id], cs[id]) {
			extra = append(extra, "service set "+id)
		}
	}
	for key := range c.LocalPods {
		if reflect.DeepEqual(pl[key], cl[key]) {
			extra = append(extra, "local pod "+key)
		}
	}
	if len(extra) > 0 {
		return fmt.Errorf("the Changes name what did not change: %s", strings.Join(extra, ", "))
	}
	if len(missed) > 0 {
		return fmt.Errorf("the Changes miss what changed: %s", strings.Join(missed, ", "))
	}
	return nil
}

func joinKeys[V any](a, b map[string]V) map[string]struct{} {
	out := make(map[string]struct{}, len(a)+len(b))
	for k := range a {
		out[k] = struct{}{}
	}
	for k := range b {
		out[k] = struct{}{}
	}
	return out
}
