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
// Contract:
//   - After any sequence of calls, Model() is deeply equal (reflect.DeepEqual, which tells nil from
//     empty slices) to Resolve of a Snapshot holding the same node, pods, namespaces and policies:
//     same local pods and isolations, same sets, same Problems. Setting an object equal to the one
//     held changes nothing and costs a comparison.
//   - Identity: between two Models, an AddressSet or ServiceSet whose elements did not change has the
//     very same Ranges or Services slice, and a LocalPod whose isolation did not change has the same
//     *Isolation pointers, so that the layers below can skip them by identity. A changed set gets a
//     slice in another array than the previous Model's. When nothing changed at all, Model returns
//     the same *Model.
//   - Validity: the last two Models handed out stay intact; older ones may not. A changed set's
//     elements are written into the array the set had before its previous change (once large
//     enough, a set changing on every event costs no allocation), so building a Model may overwrite
//     the sets of Models before the previous one. A caller that compares consecutive Models (as
//     nft.Compiler does) must see every Model: one it skipped may share an array with the next.
//   - Cost: an event about a pod that is only a peer (not on the node) looks at the peers scoped to
//     its namespace and the namespaceSelectors in use, and costs the size of the sets whose elements
//     change. A namespace relabel re-matches that namespace's pods against the peers whose
//     namespaceSelector flips. An event about a local pod or a policy re-resolves the policies and
//     local pods of one namespace. Model costs the number of sets and local pods when they changed.
//   - The Resolver keeps the Pods' maps and slices and the NetworkPolicy pointers it is given:
//     callers must not mutate them afterwards (hand in a fresh Pod per event, as a cache transform
//     does). Models share no memory with them: local pods' addresses are copied.
//   - It is not safe for concurrent use: the caller serialises every call, Model included.
//
// The Resolver shares Resolve's compilation of policies and peers; only the bookkeeping of who
// matches what is its own.
type Resolver struct {
	node string

	pods map[podKey]*Pod // every pod, as last set
	// The lists of local pods and sets of the Model before the last one, for the next Model to reuse.
	spareLocalPods   []LocalPod
	spareAddressSets []AddressSet
	spareServiceSets []ServiceSet
	namespaces       map[string]*namespaceState
	policies         map[PolicyRef]*policyState

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

	model   *Model // the last Model handed out
	changed modelChanges
	pending Changes // since the last Model
}

// modelChanges says which parts of the last Model are stale.
type modelChanges struct {
	localPods, problems bool
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
		changed:            modelChanges{localPods: true, problems: true},
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
// time). It is assembled from the parts that changed since the last call; the rest, and the whole
// Model when nothing changed, is shared with the Models returned before. The caller must not
// modify it.
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
	if r.changed.problems {
		changes.Problems = true
	}
	if r.model != nil && !r.changed.localPods && !r.changed.problems && !r.addressSets.listChanged && !r.serviceSets.listChanged {
		return r.model, changes
	}
	m := &Model{Node: r.node}
	if r.model != nil {
		*m = *r.model
	}
	if r.changed.localPods {
		// Written into the array of the list before the last one, as the sets' lists are.
		pods := r.spareLocalPods[:0]
		if cap(pods) < len(r.localOrder) || pods == nil {
			pods = make([]LocalPod, 0, withHeadroom(len(r.localOrder)))
		}
		for _, lp := range r.localOrder {
			pods = append(pods, lp.model())
		}
		r.spareLocalPods, m.LocalPods = m.LocalPods, pods
	}
	if r.addressSets.listChanged {
		m.AddressSets = modelSets(r.addressSets.order, (*addressSetState).model, m.AddressSets, &r.spareAddressSets)
	}
	if r.serviceSets.listChanged {
		m.ServiceSets = modelSets(r.serviceSets.order, (*serviceSetState).model, m.ServiceSets, &r.spareServiceSets)
	}
	if r.changed.problems {
		m.Problems = r.problems()
	}
	r.model, r.changed = m, modelChanges{}
	r.addressSets.listChanged, r.serviceSets.listChanged = false, false
	return m, changes
}

// Reserve allocates now what the first change of each set would otherwise allocate: a spare array
// for every set that has none, with room to grow, and for the lists of sets. Called after a full
// resolve, it makes the events that follow allocate nothing for the sets they change; it costs a
// second copy of the sets' elements, which every set that changes holds anyway.
func (r *Resolver) Reserve() {
	for _, s := range r.addressSets.order {
		s.reserve()
	}
	for _, s := range r.serviceSets.order {
		s.reserve()
	}
	if n := len(r.addressSets.order); cap(r.spareAddressSets) < n {
		r.spareAddressSets = make([]AddressSet, 0, withHeadroom(n))
	}
	if n := len(r.serviceSets.order); cap(r.spareServiceSets) < n {
		r.spareServiceSets = make([]ServiceSet, 0, withHeadroom(n))
	}
	if n := len(r.localOrder); cap(r.spareLocalPods) < n || r.spareLocalPods == nil {
		r.spareLocalPods = make([]LocalPod, 0, withHeadroom(n))
	}
}

// modelSets is the Model's list of sets, written into the array of *spare (the list of the Model
// before the previous one, see the Resolver's validity contract) when it is large enough. *spare
// becomes the list it replaces, last.
func modelSets[S any, T any](states []*S, model func(*S) T, last []T, spare *[]T) []T {
	if len(states) == 0 {
		return nil
	}
	out := (*spare)[:0]
	if cap(out) < len(states) {
		out = make([]T, 0, withHeadroom(len(states)))
	}
	for _, s := range states {
		out = append(out, model(s))
	}
	*spare = last
	return out
}
