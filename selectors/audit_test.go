package selectors_test

import (
	"testing"

	networkingv1 "k8s.io/api/networking/v1"

	"github.com/nftpolicy/nftpolicy/selectors"
)

func withMode(mode string) func(*networkingv1.NetworkPolicy) {
	return func(np *networkingv1.NetworkPolicy) {
		np.Annotations = map[string]string{selectors.ModeAnnotation: mode}
	}
}

// policiesOf names the policies of an isolation ("-" when nil).
func policiesOf(iso *selectors.Isolation) string {
	if iso == nil {
		return "-"
	}
	out := ""
	for _, p := range iso.Policies {
		out += p.String() + " "
	}
	return out
}

func TestAuditedPoliciesIsolateApart(t *testing.T) {
	r := selectors.NewResolver("n1")
	r.SetNamespace(makeNamespace("a"))
	r.SetPod(makePod("a", "db", withLabels("app", "db"), withIPs("198.18.1.1"), onNode("n1")))
	r.SetPolicy(makePolicy("a", "enforced", selecting("app", "db"), withIngress(ingressRule(peers(podPeer(sel("app", "web")))))))
	r.SetPolicy(makePolicy("a", "trial", selecting("app", "db"), withMode(selectors.ModeAudit),
		withTypes(networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress),
		withIngress(ingressRule(peers(podPeer(sel("app", "api"))))),
	))
	m, _ := r.Model()
	pod := m.LocalPods[0]
	for _, c := range []struct{ what, got, want string }{
		{"ingress", policiesOf(pod.Ingress), "a/enforced "},
		{"egress", policiesOf(pod.Egress), "-"},
		{"audited ingress", policiesOf(pod.AuditIngress), "a/trial "},
		{"audited egress", policiesOf(pod.AuditEgress), "a/trial "},
	} {
		if c.got != c.want {
			t.Errorf("%s: isolated by %q, want %q", c.what, c.got, c.want)
		}
	}
	if len(pod.AuditIngress.Rules) != 1 || pod.AuditIngress.Rules[0].Policy.Name != "trial" {
		t.Errorf("audited ingress rules = %+v, want trial's one rule", pod.AuditIngress.Rules)
	}
	if len(m.Problems) != 0 {
		t.Errorf("problems = %v, want none", m.Problems)
	}

	// Switching the mode alone moves the policy between the enforced and the audited isolations.
	r.SetPolicy(makePolicy("a", "trial", selecting("app", "db"), withMode(selectors.ModeEnforce),
		withTypes(networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress),
		withIngress(ingressRule(peers(podPeer(sel("app", "api"))))),
	))
	m, changes := r.Model()
	pod = m.LocalPods[0]
	if got := policiesOf(pod.Ingress) + "|" + policiesOf(pod.Egress) + "|" + policiesOf(pod.AuditIngress) + "|" + policiesOf(pod.AuditEgress); got != "a/enforced a/trial |a/trial |-|-" {
		t.Errorf("after enforcing trial: %q", got)
	}
	if !changes.Isolations() {
		t.Error("a mode change is not reported as an isolation change")
	}
}

func TestUnknownModeEnforcesAndIsReported(t *testing.T) {
	r := selectors.NewResolver("n1")
	r.SetNamespace(makeNamespace("a"))
	r.SetPod(makePod("a", "db", withLabels("app", "db"), withIPs("198.18.1.1"), onNode("n1")))
	r.SetPolicy(makePolicy("a", "p", selecting("app", "db"), withMode("dry-run")))
	m, _ := r.Model()
	if got := policiesOf(m.LocalPods[0].Ingress); got != "a/p " {
		t.Errorf("ingress isolated by %q, want the policy enforced", got)
	}
	if m.LocalPods[0].AuditIngress != nil {
		t.Errorf("audited ingress = %+v, want nil", m.LocalPods[0].AuditIngress)
	}
	want := selectors.Problem{Policy: selectors.PolicyRef{Namespace: "a", Name: "p"}, Field: "metadata.annotations[nftpolicy.io/mode]",
		Message: `unknown mode "dry-run" (want enforce or audit); the policy is enforced`}
	if len(m.Problems) != 1 || m.Problems[0] != want {
		t.Errorf("problems = %+v, want [%+v]", m.Problems, want)
	}
}
