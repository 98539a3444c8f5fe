package explain_test

import (
	"bytes"
	"strings"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"

	"github.com/nftpolicy/nftpolicy/explain"
	"github.com/nftpolicy/nftpolicy/selectors"
)

func audited(np *networkingv1.NetworkPolicy) *networkingv1.NetworkPolicy {
	np.Annotations = map[string]string{selectors.ModeAnnotation: selectors.ModeAudit}
	return np
}

// TestExplainAudit: audited policies take no part in the verdict and are answered apart, with what
// enforcing them would change.
func TestExplainAudit(t *testing.T) {
	redisTrial := func() *networkingv1.NetworkPolicy {
		return audited(makePolicy("redis-trial", map[string]string{"app": "redis"}, ingressRule(peers(podsPeer("app", "busybox")), tcp(6379))))
	}
	for _, tc := range []struct {
		name     string
		policies []*networkingv1.NetworkPolicy
		src, dst string
		allowed  bool
		verdict  string
		text     string
	}{
		{"would drop where only the audited policy isolates", []*networkingv1.NetworkPolicy{redisTrial()},
			"default/guestbook", "default/redis", true, explain.WouldDrop, "audited (not enforced): default/redis-trial; WOULD DROP"},
		{"admitted by the audited policy alone: no change", []*networkingv1.NetworkPolicy{redisTrial()},
			"default/busybox", "default/redis", true, "", "enforcing them would change nothing here"},
		{"would allow what the enforced policy denies", []*networkingv1.NetworkPolicy{redisPolicy(), redisTrial()},
			"default/busybox", "default/redis", false, explain.WouldAllow, "WOULD ALLOW by default/redis-trial ingress[0]"},
		{"allowed by the enforced policy: no change", []*networkingv1.NetworkPolicy{redisPolicy(), redisTrial()},
			"default/guestbook", "default/redis", true, "", "enforcing them would change nothing here"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			port, _ := explain.ParsePortSpec("6379/TCP")
			src, dst := strings.Split(tc.src, "/"), strings.Split(tc.dst, "/")
			got, err := explain.Explain(cluster(tc.policies...), explain.PodTarget(src[0], src[1]), explain.PodTarget(dst[0], dst[1]), port, 4)
			if err != nil {
				t.Fatal(err)
			}
			in := got.Ingress
			if got.Allowed != tc.allowed || in.Allowed != tc.allowed {
				t.Errorf("allowed %v (ingress %v), want %v", got.Allowed, in.Allowed, tc.allowed)
			}
			for _, p := range in.IsolatedBy {
				if p.Name == "redis-trial" {
					t.Errorf("isolated by the audited policy: %v", in.IsolatedBy)
				}
			}
			if in.Audit == nil || len(in.Audit.Policies) != 1 || in.Audit.Policies[0].Name != "redis-trial" || in.Audit.Verdict != tc.verdict {
				t.Fatalf("audit %+v, want redis-trial with verdict %q", in.Audit, tc.verdict)
			}
			var out bytes.Buffer
			if err := (&explain.Report{Spec: *got}).WriteText(&out); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out.String(), tc.text) {
				t.Errorf("text\n%s\nholds no %q", out.String(), tc.text)
			}
		})
	}
}
