package selectors

import (
	"maps"
	"reflect"
	"slices"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"
)

// SetPolicy adds or replaces a NetworkPolicy, keyed by namespace and name. The Resolver keeps the
// pointer; the caller must never mutate the object afterwards.
func (r *Resolver) SetPolicy(np *networkingv1.NetworkPolicy) {
	if np == nil {
		return
	}
	ref := PolicyRef{Namespace: np.Namespace, Name: np.Name}
	ps := r.policies[ref]
	if ps != nil && (ps.np == np || reflect.DeepEqual(ps.np.Spec, np.Spec) && ps.np.Annotations[ModeAnnotation] == np.Annotations[ModeAnnotation]) {
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

// policyState is one NetworkPolicy. It is active while it selects a local pod: only then is it
// compiled and do its rules hold references to sets.
type policyState struct {
	ref        PolicyRef
	np         *networkingv1.NetworkPolicy
	audit      bool // audited, not enforced (ModeAnnotation)
	selector   parsedSelector
	selectorOK bool
	// selectorProblems is the invalid podSelector, reported while the namespace has a local pod.
	selectorProblems problemSet
	compiled         *compiledPolicy // while active
	selected         []selectedPod   // the local pods it selects, by name
	problems         []Problem       // as the Model reports them, sorted
}

func byPolicyName(a, b *policyState) int { return strings.Compare(a.ref.Name, b.ref.Name) }

// selectedPod is a local pod a policy selects, with the policy's rules as they apply to it, per
// direction of the policy's dirs.
type selectedPod struct {
	pod   *localPod
	rules [][]Rule
}

// replacePolicy puts np (nil: deleted) in place of a policy's object and re-resolves the local
// pods of its namespace. The sets the new version refers to are taken before the old version's are
// let go, so that a set both use is kept as it is.
func (r *Resolver) replacePolicy(ns *namespaceState, ps *policyState, np *networkingv1.NetworkPolicy) {
	old := ps.compiled
	r.pending.notePolicy(ps.ref)
	ps.np, ps.compiled, ps.selected, ps.audit = np, nil, nil, false
	ps.selector, ps.selectorOK, ps.selectorProblems = parsedSelector{}, false, nil
	if np != nil {
		c := newPolicyCompiler(ps.ref)
		ps.selector, ps.selectorOK = c.policySelector(np)
		var problem string
		if ps.audit, problem = audited(np); problem != "" {
			c.problem(ModeField, problem)
		}
		ps.selectorProblems = c.problems
		r.reselect(ns, ps)
	} else {
		r.setProblems(ps, nil)
	}
	if old != nil {
		r.referSets(old, -1)
	}
	r.unsettled[ns.name] = struct{}{}
}

// reselect recomputes which local pods a policy selects and what its rules are for each of them,
// compiling it when it becomes active and letting it go when it stops being.
//
// "podSelector selects the pods to which this NetworkPolicy object applies. ... An empty selector
// matches all pods in the policy's namespace."
func (r *Resolver) reselect(ns *namespaceState, ps *policyState) {
	if len(ns.local) == 0 && ps.compiled == nil {
		// The policies of a namespace without local pods are not read.
		ps.selected = nil
		r.setProblems(ps, nil)
		return
	}
	c := newPolicyCompiler(ps.ref)
	if len(ns.local) > 0 {
		maps.Copy(c.problems, ps.selectorProblems)
	}
	var selected []selectedPod
	if ps.selectorOK {
		for _, lp := range ns.local {
			if ps.selector.selector.Matches(labelsOf(lp.pod)) {
				selected = append(selected, selectedPod{pod: lp})
			}
		}
	}
	switch {
	case len(selected) > 0 && ps.compiled == nil:
		ps.compiled = compilePolicy(ps.ref, ps.np)
		r.referSets(ps.compiled, 1)
	case len(selected) == 0 && ps.compiled != nil:
		r.referSets(ps.compiled, -1)
		ps.compiled = nil
	}
	if ps.compiled != nil {
		maps.Copy(c.problems, ps.compiled.problems)
		for i := range selected {
			selected[i].rules = make([][]Rule, len(ps.compiled.dirs))
			for d, rules := range ps.compiled.rules {
				for _, cr := range rules {
					selected[i].rules[d] = append(selected[i].rules[d], c.ruleForPod(cr, selected[i].pod.pod))
				}
			}
		}
	}
	ps.selected = selected
	r.setProblems(ps, c.problems.sorted())
}

// referSets takes (delta 1) or drops (delta -1) the references a compiled policy's rules hold to
// sets.
func (r *Resolver) referSets(cp *compiledPolicy, delta int) {
	for _, rules := range cp.rules {
		for i := range rules {
			cr := &rules[i]
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

func (r *Resolver) setProblems(ps *policyState, problems []Problem) {
	if slices.Equal(ps.problems, problems) {
		return
	}
	ps.problems = problems
	r.pending.Problems = true
	if len(problems) > 0 {
		r.withIssues[ps] = struct{}{}
	} else {
		delete(r.withIssues, ps)
	}
}

// reisolate recomputes the isolation of every local pod of a namespace from the policies that
// select it. It runs once per namespace
// before a Model, however many of the namespace's objects changed.
//
// "Traffic is allowed to a pod if there are no NetworkPolicies selecting the pod ... OR if the
// traffic matches at least one ingress rule across all of the NetworkPolicy objects whose
// podSelector matches the pod." Policies are taken by name, then direction. Audited policies make
// isolations of their own, as if the enforced ones were absent.
func (r *Resolver) reisolate(ns *namespaceState) {
	for _, lp := range ns.local {
		var isolations [4]*Isolation // ingress, egress, audited ingress, audited egress
		for _, ps := range ns.policies {
			i := slices.IndexFunc(ps.selected, func(sp selectedPod) bool { return sp.pod == lp })
			if i < 0 {
				continue
			}
			for d, dir := range ps.compiled.dirs {
				k := 0
				if dir == Egress {
					k = 1
				}
				if ps.audit {
					k += 2
				}
				iso := &isolations[k]
				if *iso == nil {
					*iso = &Isolation{}
				}
				(*iso).Policies = append((*iso).Policies, ps.ref)
				(*iso).Rules = append((*iso).Rules, ps.selected[i].rules[d]...)
			}
		}
		r.keepIsolation(lp, &lp.ingress, isolations[0])
		r.keepIsolation(lp, &lp.egress, isolations[1])
		r.keepIsolation(lp, &lp.auditIngress, isolations[2])
		r.keepIsolation(lp, &lp.auditEgress, isolations[3])
	}
}

func (r *Resolver) keepIsolation(lp *localPod, held **Isolation, iso *Isolation) {
	if reflect.DeepEqual(*held, iso) {
		return
	}
	*held = iso
	r.pending.noteLocalPod(keyOf(lp.pod).String())
}

// problems are the problems of every policy, sorted by policy, then field and message.
func (r *Resolver) problems() []Problem {
	if len(r.withIssues) == 0 {
		return nil
	}
	policies := slices.SortedFunc(maps.Keys(r.withIssues), func(a, b *policyState) int { return comparePolicyRefs(a.ref, b.ref) })
	var out []Problem
	for _, ps := range policies {
		out = append(out, ps.problems...)
	}
	return out
}
