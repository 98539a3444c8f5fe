package controllers

import (
	"context"
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/nftpolicy/nftpolicy/selectors"
)

// Event reasons the agent reports.
const (
	ReasonPolicyProblem = "PolicyProblem"
	actionEnforcing     = "Enforcing"
)

// problemReporter turns policy problems into Events on the NetworkPolicy without flooding the cluster:
// only an agent on which the policy is in effect (it selects a local pod) reports, and each agent
// reports a problem once, until it goes away or changes.
type problemReporter struct {
	mu       sync.Mutex
	reported map[selectors.Problem]bool
}

// reportProblems emits an Event for each problem in effect that was not reported yet, and forgets
// problems that are gone, so that their return is reported again.
func (r *NodeReconciler) reportProblems(ctx context.Context, inEffect []selectors.Problem) {
	log := logf.FromContext(ctx)
	rep := &r.problems
	rep.mu.Lock()
	defer rep.mu.Unlock()

	if len(inEffect) == len(rep.reported) && allReported(rep.reported, inEffect) {
		return // the same problems as the last sync: nothing to report or forget
	}
	reported := make(map[selectors.Problem]bool, len(inEffect))
	for _, p := range inEffect {
		if rep.reported[p] {
			reported[p] = true
			continue
		}
		policy, err := r.policy(ctx, p.Policy)
		if err != nil {
			// The policy went away since the snapshot; the next sync drops the problem.
			log.V(4).Info("Not reporting a problem of a policy that is gone", "policy", klog.KRef(p.Policy.Namespace, p.Policy.Name), "err", err)
			continue
		}
		log.V(2).Info("Reporting a policy problem", "policy", klog.KObj(policy), "field", p.Field, "problem", p.Message)
		how := "enforces it as matching nothing"
		if p.Field == selectors.ModeField {
			how = "enforces the policy" // an unknown mode: the message says so
		}
		r.Recorder.Eventf(policy, nil, corev1.EventTypeWarning, ReasonPolicyProblem, actionEnforcing,
			"%s: %s (node %s %s)", p.Field, p.Message, r.NodeName, how)
		reported[p] = true
	}
	rep.reported = reported
}

// allReported reports whether every problem of inEffect is in reported.
func allReported(reported map[selectors.Problem]bool, inEffect []selectors.Problem) bool {
	for _, p := range inEffect {
		if !reported[p] {
			return false
		}
	}
	return true
}

func (r *NodeReconciler) policy(ctx context.Context, ref selectors.PolicyRef) (*networkingv1.NetworkPolicy, error) {
	var policy networkingv1.NetworkPolicy
	if err := r.Client.Get(ctx, types.NamespacedName{Namespace: ref.Namespace, Name: ref.Name}, &policy); err != nil {
		return nil, fmt.Errorf("getting policy %s: %w", ref, err)
	}
	return &policy, nil
}

// problemsInEffect returns the problems of policies that select at least one local pod.
func problemsInEffect(m *selectors.Model) []selectors.Problem {
	return problemsIn(m, policiesInEffect(m))
}

// problemsIn returns the problems of m whose policies are in inEffect.
func problemsIn(m *selectors.Model, inEffect map[selectors.PolicyRef]bool) []selectors.Problem {
	var out []selectors.Problem
	for _, p := range m.Problems {
		if inEffect[p.Policy] {
			out = append(out, p)
		}
	}
	return out
}

// policiesInEffect returns the policies that isolate at least one local pod in some direction,
// audited ones included: their problems are reported too.
func policiesInEffect(m *selectors.Model) map[selectors.PolicyRef]bool {
	return addPoliciesInEffect(map[selectors.PolicyRef]bool{}, m)
}

// addPoliciesInEffect adds the policies in effect in m to in and returns it.
func addPoliciesInEffect(in map[selectors.PolicyRef]bool, m *selectors.Model) map[selectors.PolicyRef]bool {
	for _, pod := range m.LocalPods {
		for _, iso := range []*selectors.Isolation{pod.Ingress, pod.Egress, pod.AuditIngress, pod.AuditEgress} {
			if iso == nil {
				continue
			}
			for _, ref := range iso.Policies {
				in[ref] = true
			}
		}
	}
	return in
}
