package selectors

import (
	"maps"
	"reflect"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// Resolver holds one node's view of the cluster and its resolved Model, updated object by object,
// so that the cost of an event follows what the event changes rather than the size of the cluster.
//
//   - After any sequence of calls, Model() is deeply equal (reflect.DeepEqual) to the Model of a new
//     Resolver loaded with the same node, pods, namespaces and policies. Setting an object equal to
//     the one held changes nothing and costs a comparison.
//   - A Model is never written once returned. The parts of it that did not change may be shared
//     with the Models before and after it; Changes, returned with it, is the only way to learn what
//     differs from the Model before.
//   - Cost: an event about a pod that is only a peer (not on the node) looks at the peers scoped to
//     its namespace and the namespaceSelectors in use, and costs the size of the sets whose elements
//     change. A namespace relabel re-matches that namespace's pods against the peers whose
//     namespaceSelector flips. An event about a local pod or a policy re-resolves the policies and
//     local pods of one namespace. Model costs the number of sets and local pods when they changed.
//   - The Resolver keeps the Pods' maps and slices and the NetworkPolicy pointers it is given:
//     callers must not mutate them afterwards (hand in a fresh Pod per event, as a cache transform
//     does). Models share no memory with them: local pods' addresses are copied.
//   - It is not safe for concurrent use: the caller serialises every call, Model included.
type Resolver struct {
	node string

	pods       map[podKey]*Pod // every pod, as last set
	namespaces map[string]*namespaceState
	policies   map[PolicyRef]*policyState

	// Peer side: the selector peers used by the sets of active policies, with their members.
	namespacedPeers    map[string]map[string]*peerState   // without namespaceSelector, by namespace then definition
	namespaceSelectors map[string]*namespaceSelectorState // with one, by canonical namespaceSelector
	addressSets        setRegistry[*addressSetState]
	serviceSets        setRegistry[*serviceSetState]
	changedSets        map[memberSet]struct{} // counts changed since the last Model

	// Local side.
	local      map[podKey]*localPod
	localOrder []*localPod               // by namespace, then name
	withIssues map[*policyState]struct{} // policies with problems to report
	unsettled  map[string]struct{}       // namespaces whose local pods' isolations need recomputing

	model   *Model  // the last Model handed out
	pending Changes // since the last Model
}

// podKey names a pod.
type podKey struct{ namespace, name string }

func keyOf(p *Pod) podKey { return podKey{p.Namespace, p.Name} }

// String is the key's "namespace/name", as LocalPod.Key.
func (k podKey) String() string { return k.namespace + "/" + k.name }

// namespaceState is what the Resolver knows of one namespace; it exists while the namespace has an
// object, an eligible pod or a policy.
type namespaceState struct {
	name      string
	hasObject bool
	stored    map[string]string // the object's labels
	labels    labels.Set        // as namespaceSelectors see them
	pods      map[string]*Pod   // eligible pods by name
	local     []*localPod       // eligible pods on the node, by name
	policies  []*policyState    // by name
}

// NewResolver returns a Resolver for a node, holding an empty cluster.
func NewResolver(node string) *Resolver {
	return &Resolver{
		node:               node,
		pods:               make(map[podKey]*Pod),
		namespaces:         make(map[string]*namespaceState),
		policies:           make(map[PolicyRef]*policyState),
		namespacedPeers:    make(map[string]map[string]*peerState),
		namespaceSelectors: make(map[string]*namespaceSelectorState),
		addressSets:        newSetRegistry[*addressSetState](),
		serviceSets:        newSetRegistry[*serviceSetState](),
		changedSets:        make(map[memberSet]struct{}),
		local:              make(map[podKey]*localPod),
		withIssues:         make(map[*policyState]struct{}),
		unsettled:          make(map[string]struct{}),
		pending:            FullChanges(),
	}
}

// Load sets every object of a snapshot, as an agent does from its cache on start: namespaces,
// pods, then policies, so that each peer's members are found once, when a policy first uses it.
// The snapshot's Node is not read: the Resolver's is.
func (r *Resolver) Load(s *Snapshot) {
	for _, ns := range s.Namespaces {
		r.SetNamespace(ns)
	}
	for _, p := range s.Pods {
		r.SetPod(p)
	}
	for _, np := range s.Policies {
		r.SetPolicy(np)
	}
}

// SetPod adds or replaces a pod, keyed by namespace and name. A pod that moves to another
// namespace is another pod: delete the old key.
func (r *Resolver) SetPod(p Pod) {
	key := keyOf(&p)
	old := r.pods[key]
	if old != nil && old.ReadsAs(&p) {
		return
	}
	r.pods[key] = &p
	r.podChanged(key, old, &p)
}

// DeletePod removes a pod.
func (r *Resolver) DeletePod(namespace, name string) {
	key := podKey{namespace, name}
	old := r.pods[key]
	if old == nil {
		return
	}
	delete(r.pods, key)
	r.podChanged(key, old, nil)
}

// podChanged follows a pod from old to cur (either nil): only eligible pods are peers, and only
// eligible pods on the node are local.
func (r *Resolver) podChanged(key podKey, old, cur *Pod) {
	old, cur = eligibleOrNil(old), eligibleOrNil(cur)
	if old == nil && cur == nil {
		return
	}
	ns := r.namespace(key.namespace)
	if cur != nil {
		ns.pods[key.name] = cur
	} else {
		delete(ns.pods, key.name)
	}
	r.repeerPod(ns, old, cur)
	r.relocalPod(ns, key, r.localOrNil(old), r.localOrNil(cur))
	r.dropIfUnused(ns)
}

func eligibleOrNil(p *Pod) *Pod {
	if p == nil || !eligible(p) {
		return nil
	}
	return p
}

func (r *Resolver) localOrNil(p *Pod) *Pod {
	if p == nil || p.Node != r.node {
		return nil
	}
	return p
}

// SetNamespace adds or replaces a namespace.
func (r *Resolver) SetNamespace(ns Namespace) {
	st := r.namespace(ns.Name)
	if st.hasObject && maps.Equal(st.stored, ns.Labels) {
		return
	}
	st.hasObject, st.stored = true, ns.Labels
	r.setNamespaceLabels(st, namespaceLabels(ns.Name, ns.Labels))
}

// DeleteNamespace removes a namespace object. Its pods and policies stay until they are deleted
// themselves; meanwhile namespaceSelectors see only the name label, as Resolve does.
func (r *Resolver) DeleteNamespace(name string) {
	st := r.namespaces[name]
	if st == nil || !st.hasObject {
		return
	}
	st.hasObject, st.stored = false, nil
	r.setNamespaceLabels(st, namespaceLabels(name, nil))
	r.dropIfUnused(st)
}

func (r *Resolver) setNamespaceLabels(st *namespaceState, set labels.Set) {
	old := st.labels
	st.labels = set
	if !maps.Equal(old, set) {
		r.relabelNamespace(st, old)
	}
}

// namespace returns the state of a namespace, creating it as a namespace without an object.
func (r *Resolver) namespace(name string) *namespaceState {
	st := r.namespaces[name]
	if st == nil {
		st = &namespaceState{name: name, labels: namespaceLabels(name, nil), pods: make(map[string]*Pod)}
		r.namespaces[name] = st
	}
	return st
}

func (r *Resolver) dropIfUnused(st *namespaceState) {
	if !st.hasObject && len(st.pods) == 0 && len(st.policies) == 0 {
		delete(r.namespaces, st.name)
	}
}

// SetPolicy adds or replaces a NetworkPolicy, keyed by namespace and name. The Resolver keeps the
// pointer; the caller must never mutate the object afterwards.
func (r *Resolver) SetPolicy(np *networkingv1.NetworkPolicy) {
	if np == nil {
		return
	}
	ref := PolicyRef{Namespace: np.Namespace, Name: np.Name}
	ps := r.policies[ref]
	if ps != nil && (ps.np == np || reflect.DeepEqual(ps.np.Spec, np.Spec)) {
		ps.np = np
		return
	}
	ns := r.namespace(ref.Namespace)
	if ps == nil {
		ps = &policyState{ref: ref}
		r.policies[ref] = ps
		ns.policies = insertSorted(ns.policies, ps, byPolicyName)
	}
	r.replacePolicy(ns, ps, np)
}

// DeletePolicy removes a NetworkPolicy.
func (r *Resolver) DeletePolicy(namespace, name string) {
	ref := PolicyRef{Namespace: namespace, Name: name}
	ps := r.policies[ref]
	if ps == nil {
		return
	}
	ns := r.namespaces[namespace]
	r.replacePolicy(ns, ps, nil)
	delete(r.policies, ref)
	ns.policies = deleteSorted(ns.policies, ps, byPolicyName)
	r.dropIfUnused(ns)
}

// Model returns the resolved Model and what changed since the last call (everything, the first
// time). The parts that did not change are those of the Model before. The caller must not modify
// the Model.
func (r *Resolver) Model() (*Model, Changes) {
	for name := range r.unsettled {
		if ns := r.namespaces[name]; ns != nil {
			r.reisolate(ns)
		}
	}
	clear(r.unsettled)
	r.settleSets()
	changes := r.pending
	r.pending = Changes{}
	if r.model != nil && changes.None() {
		return r.model, changes
	}
	m := &Model{Node: r.node}
	if r.model != nil {
		*m = *r.model
	}
	if changes.Full || changes.LocalPods.Len() > 0 {
		m.LocalPods = make([]LocalPod, 0, len(r.localOrder))
		for _, lp := range r.localOrder {
			m.LocalPods = append(m.LocalPods, lp.model())
		}
	}
	if changes.Full || changes.AddressSets.Len() > 0 {
		m.AddressSets = modelSets(r.addressSets.order, (*addressSetState).model)
	}
	if changes.Full || changes.ServiceSets.Len() > 0 {
		m.ServiceSets = modelSets(r.serviceSets.order, (*serviceSetState).model)
	}
	if changes.Full || changes.Problems {
		m.Problems = r.problems()
	}
	r.model = m
	return m, changes
}

// modelSets is the Model's list of sets, in ID order.
func modelSets[S any, T any](states []*S, model func(*S) T) []T {
	if len(states) == 0 {
		return nil
	}
	out := make([]T, 0, len(states))
	for _, s := range states {
		out = append(out, model(s))
	}
	return out
}
