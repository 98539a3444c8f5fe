package selectors

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
//   - ClusterNetworkPolicies: an edit re-resolves the local pods its old or new subject selects,
//     against every ClusterNetworkPolicy; a local pod's relabel or port change, or a relabel of
//     its namespace, re-resolves that pod likewise. Their peers are the sets NetworkPolicy uses,
//     kept up to date by the same peer events.
//   - The Resolver keeps the Pods' maps and slices and the policy pointers it is given:
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
	blockPeers         map[string]*peerState              // ipBlock peers of service sets, by definition
	addressSets        setRegistry[*addressSetState]
	serviceSets        setRegistry[*serviceSetState]
	changedSets        map[memberSet]struct{} // counts changed since the last Model
	scratch            []AddrRange            // working memory of set rebuilds, never handed out

	// Local side.
	local      map[podKey]*localPod
	localOrder []*localPod               // by namespace, then name
	withIssues map[*policyState]struct{} // policies with problems to report
	unsettled  map[string]struct{}       // namespaces whose local pods' isolations need recomputing

	// ClusterNetworkPolicies.
	clusterPolicies      map[string]*clusterPolicyState
	clusterTiers         [2][]*clusterPolicyState         // Admin, Baseline; by priority, then name
	clusterUnsettled     map[*localPod]struct{}           // local pods whose cluster rules need recomputing
	clusterTouched       map[*clusterPolicyState]struct{} // may have started or stopped selecting a local pod
	clusterProblemsStale bool
	clusterProblems      []Problem // as in the last Model

	model   *Model  // the last Model handed out
	pending Changes // since the last Model
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
		blockPeers:         make(map[string]*peerState),
		addressSets:        newSetRegistry[*addressSetState](),
		serviceSets:        newSetRegistry[*serviceSetState](),
		changedSets:        make(map[memberSet]struct{}),
		local:              make(map[podKey]*localPod),
		withIssues:         make(map[*policyState]struct{}),
		unsettled:          make(map[string]struct{}),
		clusterPolicies:    make(map[string]*clusterPolicyState),
		clusterUnsettled:   make(map[*localPod]struct{}),
		clusterTouched:     make(map[*clusterPolicyState]struct{}),
		pending:            FullChanges(),
	}
}

// Load sets every object of a snapshot, as an agent does from its cache on start: namespaces,
// pods, then NetworkPolicies and ClusterNetworkPolicies, so that each peer's members are found
// once, when a policy first uses it.
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
	for _, cnp := range s.ClusterPolicies {
		r.SetClusterPolicy(cnp)
	}
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
	r.settleClusterPolicies()
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
	if changes.Full || changes.ClusterProblems {
		m.ClusterProblems = r.clusterProblems
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

// Resolve computes which local pods of s.Node are isolated in which direction and what each of
// them allows, ClusterNetworkPolicy rules included: the Model of a new Resolver loaded with s. The
// same Snapshot, in any order, yields a deeply equal Model.
func Resolve(s *Snapshot) *Model {
	r := NewResolver(s.Node)
	r.Load(s)
	m, _ := r.Model()
	return m
}
