package selectors

import (
	"reflect"
	"slices"

	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"
)

// clusterPolicyState is one ClusterNetworkPolicy the Resolver holds. Like a NetworkPolicy, its
// rules hold references to their sets only while it selects a local pod.
type clusterPolicyState struct {
	name string
	cnp  *v1beta1.ClusterNetworkPolicy
	// read is the policy as read, nil when it has no effect (an unknown tier); readProblems are
	// reported whatever it selects.
	read         *clusterPolicy
	readProblems []Problem
	// selected are the local pods it selects, with the problems it has for each of them (ingress
	// named ports a pod does not define), sorted.
	selected  map[*localPod][]Problem
	holdsSets bool
}

// SetClusterPolicy adds or replaces a ClusterNetworkPolicy, keyed by name. The Resolver keeps the
// pointer; the caller must never mutate the object afterwards.
func (r *Resolver) SetClusterPolicy(cnp *v1beta1.ClusterNetworkPolicy) {
	if cnp == nil {
		return
	}
	cs := r.clusterPolicies[cnp.Name]
	if cs != nil && (cs.cnp == cnp || reflect.DeepEqual(cs.cnp.Spec, cnp.Spec)) {
		cs.cnp = cnp
		return
	}
	if cs == nil {
		cs = &clusterPolicyState{name: cnp.Name, selected: make(map[*localPod][]Problem)}
		r.clusterPolicies[cnp.Name] = cs
	}
	r.replaceClusterPolicy(cs, cnp)
}

// DeleteClusterPolicy removes a ClusterNetworkPolicy.
func (r *Resolver) DeleteClusterPolicy(name string) {
	cs := r.clusterPolicies[name]
	if cs == nil {
		return
	}
	r.replaceClusterPolicy(cs, nil)
	delete(r.clusterPolicies, name)
}

// replaceClusterPolicy puts cnp (nil: deleted) in place of a policy's object. The local pods the
// old version selected and those the new one selects get their rules recomputed at the next
// Model; no other pod's can change. The old version's sets are let go now and the new version's
// taken at the next Model, before unreferenced sets are dropped, so a set both use is kept as it is.
func (r *Resolver) replaceClusterPolicy(cs *clusterPolicyState, cnp *v1beta1.ClusterNetworkPolicy) {
	for lp := range cs.selected {
		r.clusterUnsettled[lp] = struct{}{}
	}
	if cs.read != nil {
		tier := &r.clusterTiers[tierIndex(cs.read.tier)]
		*tier = deleteSorted(*tier, cs, byClusterPrecedence)
	}
	if cs.holdsSets {
		r.referClusterSets(cs.read, -1)
		cs.holdsSets = false
	}
	r.clusterTouched[cs] = struct{}{}
	r.clusterProblemsStale = true
	cs.cnp, cs.read, cs.readProblems = cnp, nil, nil
	if cnp == nil {
		return
	}
	read, problems, ok := readClusterPolicy(cnp)
	cs.readProblems = problems
	if !ok {
		return
	}
	cs.read = read
	tier := &r.clusterTiers[tierIndex(read.tier)]
	*tier = insertSorted(*tier, cs, byClusterPrecedence)
	for _, lp := range r.localOrder {
		if read.subjectSelects(r.namespaces[lp.pod.Namespace].labels, lp.pod) {
			r.clusterUnsettled[lp] = struct{}{}
		}
	}
}

func tierIndex(t Tier) int {
	if t == BaselineTier {
		return 1
	}
	return 0
}

func byClusterPrecedence(a, b *clusterPolicyState) int { return compareClusterPolicies(a.read, b.read) }

// subjectSelects: "Subject defines the pods to which this ClusterNetworkPolicy applies." Unlike a
// NetworkPolicy's, a subject selects across namespaces by their labels. Local pods are eligible
// already ("host-networked pods are not included in subject selection").
func (cp *clusterPolicy) subjectSelects(namespaceLabels labels.Set, pod *Pod) bool {
	return cp.subjectOK && cp.subjectNamespaces.selector.Matches(namespaceLabels) && cp.subjectPods.selector.Matches(labelsOf(pod))
}

// unsettleClusterRules marks a local pod whose cluster rules may have changed: its labels, its
// ports or its namespace's labels did.
func (r *Resolver) unsettleClusterRules(lp *localPod) {
	if len(r.clusterPolicies) > 0 {
		r.clusterUnsettled[lp] = struct{}{}
	}
}

// forgetClusterRules lets a local pod that went away leave the policies that selected it.
func (r *Resolver) forgetClusterRules(lp *localPod) {
	for _, cs := range lp.clusterPolicies {
		r.unselect(cs, lp)
	}
	lp.clusterPolicies = nil
	delete(r.clusterUnsettled, lp)
}

func (r *Resolver) unselect(cs *clusterPolicyState, lp *localPod) {
	if len(cs.selected[lp]) > 0 {
		r.clusterProblemsStale = true
	}
	delete(cs.selected, lp)
	r.clusterTouched[cs] = struct{}{}
}

// settleClusterPolicies recomputes the cluster rules of the local pods marked since the last
// Model, then lets the policies that started or stopped selecting a local pod take or let go
// their sets, and collects the problems again if they may have changed.
func (r *Resolver) settleClusterPolicies() {
	for lp := range r.clusterUnsettled {
		if r.local[keyOf(lp.pod)] == lp {
			r.reclusterPod(lp)
		}
	}
	clear(r.clusterUnsettled)
	for cs := range r.clusterTouched {
		switch active := cs.read != nil && len(cs.selected) > 0; {
		case active && !cs.holdsSets:
			r.referClusterSets(cs.read, 1)
			cs.holdsSets = true
		case !active && cs.holdsSets:
			r.referClusterSets(cs.read, -1)
			cs.holdsSets = false
		}
	}
	clear(r.clusterTouched)
	if r.clusterProblemsStale {
		r.clusterProblemsStale = false
		if problems := r.collectClusterProblems(); !slices.Equal(problems, r.clusterProblems) {
			r.clusterProblems = problems
			r.pending.ClusterProblems = true
		}
	}
}

// reclusterPod recomputes which policies select a local pod and the rules they apply to it, per
// direction: tier by tier, policies by priority then name, each policy's rules as written.
func (r *Resolver) reclusterPod(lp *localPod) {
	namespaceLabels := r.namespaces[lp.pod.Namespace].labels
	var selecting []*clusterPolicyState
	var rules [2]ClusterRules // by clusterDirIndex
	c := newPolicyCompiler(PolicyRef{})
	for t, tier := range r.clusterTiers {
		for _, cs := range tier {
			if !cs.read.subjectSelects(namespaceLabels, lp.pod) {
				continue
			}
			selecting = append(selecting, cs)
			c.ref = ClusterPolicyRef(cs.name)
			clear(c.problems)
			for d, dir := range []Direction{Ingress, Egress} {
				for i := range cs.read.rules[d] {
					rule := c.clusterRuleForPod(cs.read, &cs.read.rules[d][i], dir, lp.pod)
					if t == 0 {
						rules[d].Admin = append(rules[d].Admin, rule)
					} else {
						rules[d].Baseline = append(rules[d].Baseline, rule)
					}
				}
			}
			problems := c.problems.sorted()
			if old, had := cs.selected[lp]; !had || !slices.Equal(old, problems) {
				if !slices.Equal(old, problems) {
					r.clusterProblemsStale = true
				}
				cs.selected[lp] = problems
				r.clusterTouched[cs] = struct{}{}
			}
		}
	}
	for _, cs := range lp.clusterPolicies {
		if !slices.Contains(selecting, cs) {
			r.unselect(cs, lp)
		}
	}
	lp.clusterPolicies = selecting
	r.keepClusterRules(lp, &lp.clusterIngress, rules[0])
	r.keepClusterRules(lp, &lp.clusterEgress, rules[1])
}

func (r *Resolver) keepClusterRules(lp *localPod, held **ClusterRules, rules ClusterRules) {
	var next *ClusterRules
	if rules.Admin != nil || rules.Baseline != nil {
		next = &rules
	}
	if reflect.DeepEqual(*held, next) {
		return
	}
	*held = next
	r.pending.noteLocalPod(keyOf(lp.pod).String())
}

// referClusterSets takes (delta 1) or drops (delta -1) the references a policy's rules hold to
// sets: the same sets, by definition, as NetworkPolicy rules with the same peers.
func (r *Resolver) referClusterSets(cp *clusterPolicy, delta int) {
	for d := range cp.rules {
		for i := range cp.rules[d] {
			cr := &cp.rules[d][i]
			if !cr.anyPeer {
				if delta > 0 {
					r.acquireAddressSet(cr.peersID, cr.peersDescription, cr.peers)
				} else {
					r.addressSets.release(cr.peersID)
				}
			}
			for j := range cr.services {
				if delta > 0 {
					r.acquireServiceSet(&cr.services[j])
				} else {
					r.serviceSets.release(cr.services[j].id)
				}
			}
		}
	}
}

// collectClusterProblems are the problems of every ClusterNetworkPolicy, sorted.
func (r *Resolver) collectClusterProblems() []Problem {
	all := make(problemSet)
	for _, cs := range r.clusterPolicies {
		for _, p := range cs.readProblems {
			all[p] = struct{}{}
		}
		for _, problems := range cs.selected {
			for _, p := range problems {
				all[p] = struct{}{}
			}
		}
	}
	return all.sorted()
}
