package selectors

import (
	"fmt"

	networkingv1 "k8s.io/api/networking/v1"
)

// policyCompiler reads one policy into the internal form the Resolver works with, collecting the
// problems it finds on the way. Everything it derives depends on the policy alone (and, for
// ruleForPod, on one selected pod), never on the rest of the cluster.
type policyCompiler struct {
	ref      PolicyRef
	problems problemSet
}

func newPolicyCompiler(ref PolicyRef) *policyCompiler {
	return &policyCompiler{ref: ref, problems: make(problemSet)}
}

// problem records something in the policy that cannot be enforced as written.
func (c *policyCompiler) problem(field, message string) {
	c.problems[Problem{Policy: c.ref, Field: field, Message: message}] = struct{}{}
}

// compiledPolicy is what a policy's rules say, per direction it affects.
type compiledPolicy struct {
	dirs     []Direction      // effective policy types
	rules    [][]compiledRule // per direction of dirs
	problems problemSet
}

// compilePolicy compiles the rules of every direction a policy affects.
func compilePolicy(ref PolicyRef, np *networkingv1.NetworkPolicy) *compiledPolicy {
	c := newPolicyCompiler(ref)
	cp := &compiledPolicy{dirs: c.effectivePolicyTypes(np)}
	for _, dir := range cp.dirs {
		cp.rules = append(cp.rules, c.compileRules(np, dir))
	}
	cp.problems = c.problems
	return cp
}

// policySelector parses a policy's podSelector. An invalid one selects no pod, which is reported.
func (c *policyCompiler) policySelector(np *networkingv1.NetworkPolicy) (parsedSelector, bool) {
	sel, err := parseSelector(&np.Spec.PodSelector)
	if err != nil {
		c.problem("spec.podSelector", err.Error()+"; the policy selects no pod")
		return parsedSelector{}, false
	}
	return sel, true
}

// effectivePolicyTypes implements: "If this field is not specified, it will default based on the
// existence of ingress or egress rules; policies that contain an egress section are assumed to
// affect egress, and all policies (whether or not they contain an ingress section) are assumed to
// affect ingress."
func (c *policyCompiler) effectivePolicyTypes(np *networkingv1.NetworkPolicy) []Direction {
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
			c.problem(fmt.Sprintf("spec.policyTypes[%d]", i), fmt.Sprintf("unknown policy type %q is ignored", t))
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
