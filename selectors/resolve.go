package selectors

import (
	"fmt"
	"net/netip"
	"sort"

	networkingv1 "k8s.io/api/networking/v1"
)

// resolver holds the caches of one Resolve call. Peer definitions repeat a lot across policies (the
// same "allow from namespace monitoring" in every namespace), so each distinct definition is
// evaluated once.
type resolver struct {
	idx         *clusterIndex
	problems    problemSet
	peerPods    map[string][]*Pod      // by peer canonical definition
	nsMatch     map[string][]string    // by namespace selector canonical form
	selected    map[string][]int       // local pods a policy podSelector selects, by namespace and selector
	addressSets map[string]*AddressSet // by ID
	serviceSets map[string]*ServiceSet // by ID
}

// Resolve computes which local pods are isolated in which direction and what each of them allows.
// It is pure and deterministic: the same Snapshot, in any order, yields a deeply equal Model. The
// Model shares no memory with the Snapshot; its Rules may share read-only slices with each other.
//
// Only policies of namespaces with a local pod are read, and only those that select a local pod are
// resolved; so Problems are about the policies this node enforces (plus an invalid podSelector in a
// namespace with a local pod, which might have selected one).
func Resolve(s *Snapshot) *Model {
	r := &resolver{
		idx:         newClusterIndex(s),
		problems:    make(problemSet),
		peerPods:    make(map[string][]*Pod),
		nsMatch:     make(map[string][]string),
		selected:    make(map[string][]int),
		addressSets: make(map[string]*AddressSet),
		serviceSets: make(map[string]*ServiceSet),
	}
	m := &Model{Node: s.Node, LocalPods: make([]LocalPod, len(r.idx.local))}
	for i, p := range r.idx.local {
		m.LocalPods[i] = LocalPod{Namespace: p.Namespace, Name: p.Name, IPs: append([]netip.Addr(nil), p.IPs...)}
	}
	for _, np := range sortedPolicies(s.Policies) {
		r.applyPolicy(m, np)
	}
	m.AddressSets = sortedSets(r.addressSets, func(a *AddressSet) string { return a.ID })
	m.ServiceSets = sortedSets(r.serviceSets, func(a *ServiceSet) string { return a.ID })
	m.Problems = r.sortedProblems()
	return m
}

// applyPolicy adds one policy's isolation and rules to every local pod it selects. A policy in a
// namespace without local pods costs nothing.
func (r *resolver) applyPolicy(m *Model, np *networkingv1.NetworkPolicy) {
	ref := PolicyRef{Namespace: np.Namespace, Name: np.Name}
	if len(r.idx.localByNS[ref.Namespace]) == 0 {
		return
	}
	selected, ok := r.selectedLocalPods(ref, np)
	if !ok || len(selected) == 0 {
		return
	}
	for _, dir := range r.effectivePolicyTypes(ref, np) {
		rules := r.compileRules(ref, np, dir)
		for i := range rules {
			r.buildSets(&rules[i])
		}
		for _, i := range selected {
			iso := isolationOf(&m.LocalPods[i], dir)
			iso.Policies = append(iso.Policies, ref)
			for _, cr := range rules {
				iso.Rules = append(iso.Rules, r.ruleForPod(ref, cr, r.idx.local[i]))
			}
		}
	}
}

// selectedLocalPods returns the indexes of the local pods the policy's podSelector selects.
func (r *resolver) selectedLocalPods(ref PolicyRef, np *networkingv1.NetworkPolicy) ([]int, bool) {
	// "podSelector selects the pods to which this NetworkPolicy object applies. ... An empty
	// selector matches all pods in the policy's namespace."
	sel, ok := r.policySelector(ref, np)
	if !ok {
		return nil, false
	}
	key := ref.Namespace + "\x00" + sel.canonical
	if selected, ok := r.selected[key]; ok {
		return selected, true
	}
	var selected []int
	for _, i := range r.idx.localByNS[ref.Namespace] {
		if sel.selector.Matches(labelsOf(r.idx.local[i])) {
			selected = append(selected, i)
		}
	}
	r.selected[key] = selected
	return selected, true
}

// policySelector parses a policy's podSelector. An invalid one selects no pod, which is reported.
func (r *resolver) policySelector(ref PolicyRef, np *networkingv1.NetworkPolicy) (parsedSelector, bool) {
	sel, err := parseSelector(&np.Spec.PodSelector)
	if err != nil {
		r.problem(ref, "spec.podSelector", err.Error()+"; the policy selects no pod")
		return parsedSelector{}, false
	}
	return sel, true
}

// effectivePolicyTypes implements: "If this field is not specified, it will default based on the
// existence of ingress or egress rules; policies that contain an egress section are assumed to
// affect egress, and all policies (whether or not they contain an ingress section) are assumed to
// affect ingress."
func (r *resolver) effectivePolicyTypes(ref PolicyRef, np *networkingv1.NetworkPolicy) []Direction {
	if len(np.Spec.PolicyTypes) == 0 {
		if len(np.Spec.Egress) > 0 {
			return []Direction{Ingress, Egress}
		}
		return []Direction{Ingress}
	}
	var ingress, egress bool
	for i, t := range np.Spec.PolicyTypes {
		switch t {
		case networkingv1.PolicyTypeIngress:
			ingress = true
		case networkingv1.PolicyTypeEgress:
			egress = true
		default:
			r.problem(ref, fmt.Sprintf("spec.policyTypes[%d]", i), fmt.Sprintf("unknown policy type %q is ignored", t))
		}
	}
	var dirs []Direction
	if ingress {
		dirs = append(dirs, Ingress)
	}
	if egress {
		dirs = append(dirs, Egress)
	}
	return dirs
}

func isolationOf(lp *LocalPod, dir Direction) *Isolation {
	p := &lp.Ingress
	if dir == Egress {
		p = &lp.Egress
	}
	if *p == nil {
		*p = &Isolation{}
	}
	return *p
}

func sortedPolicies(in []*networkingv1.NetworkPolicy) []*networkingv1.NetworkPolicy {
	out := make([]*networkingv1.NetworkPolicy, 0, len(in))
	for _, np := range in {
		if np != nil {
			out = append(out, np)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].Name < out[j].Name
	})
	return out
}

func sortedSets[T any](byID map[string]*T, id func(*T) string) []T {
	if len(byID) == 0 {
		return nil
	}
	out := make([]T, 0, len(byID))
	for _, set := range byID {
		out = append(out, *set)
	}
	sort.Slice(out, func(i, j int) bool { return id(&out[i]) < id(&out[j]) })
	return out
}
