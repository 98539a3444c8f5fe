package explain_test

import (
	"encoding/json"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/yaml"

	"github.com/nftpolicy/nftpolicy/explain"
)

func explainReport(t *testing.T, policies []*networkingv1.NetworkPolicy, src, dst, port string) *explain.Report {
	t.Helper()
	p, err := explain.ParsePortSpec(port)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := explain.Explain(cluster(policies...), mustTarget(t, src), mustTarget(t, dst), p, 0)
	if err != nil {
		t.Fatal(err)
	}
	return &explain.Report{Spec: *spec}
}

func text(t *testing.T, r *explain.Report) string {
	t.Helper()
	var b strings.Builder
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestWriteTextDenied(t *testing.T) {
	r := explainReport(t, []*networkingv1.NetworkPolicy{redisPolicy()}, "default/busybox", "default/redis", "6379/tcp")
	want := `connection: default/busybox (10.0.1.10) -> default/redis (10.0.1.20) 6379/TCP
egress of default/busybox: not isolated; allowed
ingress of default/redis: DENIED: isolated by default/redis-policy; no rule admits:
  default/redis-policy ingress[0]: peer 0 wants pods app=guestbook, default/busybox has app=busybox
spec: DENIED
`
	if got := text(t, r); got != want {
		t.Errorf("text:\n%s\nwant:\n%s", got, want)
	}
}

func TestWriteTextAllowed(t *testing.T) {
	egress := makePolicy("x", map[string]string{"app": "busybox"}, egressRule(peers(podsPeer("app", "redis")), tcpNamed("redis")))
	r := explainReport(t, []*networkingv1.NetworkPolicy{egress}, "default/busybox", "default/redis", "redis")
	want := `connection: default/busybox (10.0.1.10) -> default/redis (10.0.1.20) 6379/TCP (redis)
egress of default/busybox: isolated by default/x; allowed by default/x egress[0] (peer 0: pods app=redis; port 0: port name redis/TCP (6379 on default/redis))
ingress of default/redis: not isolated; allowed
spec: ALLOWED
`
	if got := text(t, r); got != want {
		t.Errorf("text:\n%s\nwant:\n%s", got, want)
	}
}

// A dataplane answer is rendered step by step, and a verdict that is not the spec's is flagged.
func TestWriteTextDataplane(t *testing.T) {
	r := explainReport(t, []*networkingv1.NetworkPolicy{redisPolicy()}, "default/busybox", "default/redis", "6379/tcp")
	r.Dataplane = []explain.DataplaneAnswer{{
		Node: "n1", Direction: explain.Ingress, Verdict: explain.Accept,
		Path: []explain.PathStep{
			{Chain: "forward", Rule: 2, Text: "ip daddr vmap @pod-ingress-v4", Matched: true,
				VMap: &explain.VMapHit{Map: "pod-ingress-v4", Key: "10.0.1.20", Verdict: "jump pod-in-x", Found: true}},
			{Chain: "pol-y", Rule: 0, Text: "ip saddr @peers-z tcp dport 6379 accept", Comment: "default/redis-policy ingress[0]",
				Counter: "rule-y-0", CounterValue: 3, Lookups: []explain.Lookup{{Set: "peers-z", Key: "10.0.1.10", Found: true}}, Matched: true},
		},
		Drift: []string{"set peers-z: element 10.0.1.10 is in the kernel only"},
	}}
	got := text(t, r)
	for _, line := range []string{
		"dataplane ingress on node n1: accept\n",
		"  forward[2] matched: ip daddr vmap @pod-ingress-v4; vmap @pod-ingress-v4 10.0.1.20 found -> jump pod-in-x\n",
		"  pol-y[0] matched: ip saddr @peers-z tcp dport 6379 accept; counter rule-y-0=3; @peers-z 10.0.1.10 found\n",
		"  DRIFT: set peers-z: element 10.0.1.10 is in the kernel only\n",
		"DISAGREE: node n1 ingress: spec denies, dataplane accept\n",
	} {
		if !strings.Contains(got, line) {
			t.Errorf("text lacks %q:\n%s", line, got)
		}
	}
	if r.Agrees() {
		t.Error("Agrees() with a disagreeing verdict and drift")
	}
	r.Dataplane[0].Verdict, r.Dataplane[0].Drift = explain.Drop, nil
	if !r.Agrees() {
		t.Errorf("Agrees() = false with %+v", r.Agreements())
	}
	r.Drift = []string{"committed ruleset and kernel differ"}
	if r.Agrees() {
		t.Error("Agrees() with report drift")
	}
}

// A dataplane answer for a side that is no pod agrees when it accepts: nothing isolates it.
func TestAgreementWithoutPod(t *testing.T) {
	r := explainReport(t, nil, "203.0.113.7", "default/redis", "6379/tcp")
	r.Dataplane = []explain.DataplaneAnswer{{Node: "n1", Direction: explain.Egress, Verdict: explain.Accept}}
	if a := r.Agreements(); len(a) != 1 || !a[0].Agree || !a[0].SpecAllows {
		t.Errorf("Agreements() = %+v", a)
	}
}

// The JSON and YAML field names are the plugin's output format.
func TestJSONFieldNames(t *testing.T) {
	r := explainReport(t, []*networkingv1.NetworkPolicy{redisPolicy()}, "default/busybox", "default/redis", "6379/tcp")
	out, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{`"spec":`, `"srcIP":"10.0.1.10"`, `"protocol":"TCP"`, `"isolatedBy":[{"namespace":"default","name":"redis-policy"}]`,
		`"kind":"peer-pod-selector","peer":0,"text":"peer 0 wants pods app=guestbook, default/busybox has app=busybox"`} {
		if !strings.Contains(string(out), field) {
			t.Errorf("JSON lacks %s: %s", field, out)
		}
	}
	var back explain.Report
	if err := yaml.Unmarshal(mustYAML(t, r), &back); err != nil {
		t.Fatal(err)
	}
	if back.Spec.Connection.DstIP != r.Spec.Connection.DstIP || back.Spec.Ingress.Rejections[0].Reasons[0].Kind != explain.ReasonPeerPodSelector ||
		back.Spec.Connection.Protocol != corev1.ProtocolTCP {
		t.Errorf("YAML round trip lost fields: %+v", back.Spec)
	}
}

func mustYAML(t *testing.T, v any) []byte {
	t.Helper()
	out, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
