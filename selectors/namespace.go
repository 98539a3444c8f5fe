package selectors

import (
	"maps"
	"reflect"

	"k8s.io/apimachinery/pkg/labels"
)

// namespaceState is what the Resolver knows of one namespace; it exists while the namespace has an
// object, an eligible pod or a policy.
type namespaceState struct {
	name     string
	stored   *Namespace      // the object, nil without one
	labels   labels.Set      // as namespaceSelectors see them
	pods     map[string]*Pod // eligible pods by name
	local    []*localPod     // eligible pods on the node, by name
	policies []*policyState  // by name
}

// SetNamespace adds or replaces a namespace.
func (r *Resolver) SetNamespace(ns Namespace) {
	st := r.namespace(ns.Name)
	if st.stored != nil && reflect.DeepEqual(*st.stored, ns) {
		return
	}
	st.stored = &ns
	r.setNamespaceLabels(st, NamespaceLabels(ns.Name, ns.Labels))
}

// DeleteNamespace removes a namespace object. Its pods and policies stay until they are deleted
// themselves; meanwhile namespaceSelectors see only the name label.
func (r *Resolver) DeleteNamespace(name string) {
	st := r.namespaces[name]
	if st == nil || st.stored == nil {
		return
	}
	st.stored = nil
	r.setNamespaceLabels(st, NamespaceLabels(name, nil))
	r.dropIfUnused(st)
}

func (r *Resolver) setNamespaceLabels(st *namespaceState, set labels.Set) {
	old := st.labels
	st.labels = set
	if !maps.Equal(old, set) {
		r.relabelNamespace(st, old)
		// ClusterNetworkPolicy subjects select by namespace labels.
		for _, lp := range st.local {
			r.unsettleClusterRules(lp)
		}
	}
}

// namespace returns the state of a namespace, creating it as a namespace without an object.
func (r *Resolver) namespace(name string) *namespaceState {
	st := r.namespaces[name]
	if st == nil {
		st = &namespaceState{name: name, labels: NamespaceLabels(name, nil), pods: make(map[string]*Pod)}
		r.namespaces[name] = st
	}
	return st
}

func (r *Resolver) dropIfUnused(st *namespaceState) {
	if st.stored == nil && len(st.pods) == 0 && len(st.policies) == 0 {
		delete(r.namespaces, st.name)
	}
}

// relabelNamespace updates the peers whose namespaceSelector matched the namespace's old labels
// and not its new ones, or the reverse: each of the namespace's pods that the podSelector matches
// leaves or joins.
func (r *Resolver) relabelNamespace(ns *namespaceState, old labels.Set) {
	for _, nss := range r.namespaceSelectors {
		was, is := nss.selector.selector.Matches(old), nss.selector.selector.Matches(ns.labels)
		if was == is {
			continue
		}
		for _, ps := range nss.peers {
			for _, p := range ns.pods {
				switch {
				case !ps.peer.pods.selector.Matches(labelsOf(p)):
				case is:
					r.join(ps, p)
				default:
					r.leave(ps, p)
				}
			}
		}
	}
}
