package lab

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/nftpolicy/nftpolicy/lab/scenario"
)

// The series TestRuleCountersUnderTraffic reads: the one rule of policy allow-client, and the
// default deny of its namespace, both ingress.
const (
	countersNamespace = "counters"
	allowedSeries     = `nftpolicy_policy_rule_connections_total{direction="ingress",namespace="counters",policy="allow-client",rule="0"}`
	deniedSeries      = `nftpolicy_default_deny_connections_total{direction="ingress",namespace="counters"}`
)

// TestRuleCountersUnderTraffic: with server isolated for ingress by a policy admitting client on
// TCP 80, a connection from client counts on the policy's rule and not on the default deny, and a
// connection from other counts on the default deny and not on the rule, as the agent's metrics,
// scraped through its secure endpoint, report.
func TestRuleCountersUnderTraffic(t *testing.T) {
	requireLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	opts := testOptions(t)
	opts.Nodes = 1
	l, err := Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	web := []scenario.Port{{Port: 80, Protocol: scenario.ProtocolTCP}}
	if err := l.Setup(ctx, scenario.ClusterSpec{Namespaces: []scenario.Namespace{{Name: countersNamespace, Pods: []scenario.Pod{
		{Name: "server", Labels: map[string]string{"app": "server"}, Ports: web},
		{Name: "client", Labels: map[string]string{"app": "client"}, Ports: web},
		{Name: "other", Labels: map[string]string{"app": "other"}, Ports: web},
	}}}}); err != nil {
		t.Fatal(err)
	}
	tcp, port := corev1.ProtocolTCP, intstr.FromInt32(80)
	policy := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: countersNamespace, Name: "allow-client"},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "server"}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From:  []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "client"}}}},
				Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &port}},
			}},
		},
	}
	if err := l.ApplyPolicies(ctx, []*networkingv1.NetworkPolicy{policy}); err != nil {
		t.Fatal(err)
	}
	if err := l.WaitProgrammed(ctx); err != nil {
		t.Fatal(err)
	}
	agent := l.State().Agents[0]
	family := l.Families()[0]
	probe := func(src string, want bool) {
		t.Helper()
		ok, err := l.Probe(ctx, countersNamespace+"/"+src, countersNamespace+"/server", 80, scenario.ProtocolTCP, family)
		if err != nil || ok != want {
			t.Fatalf("%s -> server:80: connected %t (error %v), want %t", src, ok, err, want)
		}
	}
	scrape := func() map[string]float64 {
		t.Helper()
		series, err := scrapeSeries(ctx, agent)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := series[allowedSeries]; !ok {
			t.Fatalf("no %s among the agent's metrics", allowedSeries)
		}
		return series
	}

	before := scrape()
	probe("client", true)
	afterAllowed := scrape()
	if afterAllowed[allowedSeries] <= before[allowedSeries] || afterAllowed[deniedSeries] != before[deniedSeries] {
		t.Errorf("after an allowed connection: rule %v -> %v, default deny %v -> %v; want only the rule to count",
			before[allowedSeries], afterAllowed[allowedSeries], before[deniedSeries], afterAllowed[deniedSeries])
	}
	probe("other", false)
	afterDenied := scrape()
	if afterDenied[deniedSeries] <= afterAllowed[deniedSeries] || afterDenied[allowedSeries] != afterAllowed[allowedSeries] {
		t.Errorf("after a denied connection: rule %v -> %v, default deny %v -> %v; want only the default deny to count",
			afterAllowed[allowedSeries], afterDenied[allowedSeries], afterAllowed[deniedSeries], afterDenied[deniedSeries])
	}
}

// scrapeSeries reads an agent's counters, keyed by name and labels as the text format writes them
// (labels sorted by name).
func scrapeSeries(ctx context.Context, agent AgentState) (map[string]float64, error) {
	out := map[string]float64{}
	err := ScrapeMetrics(ctx, agent, func(r io.Reader) error {
		parser := expfmt.NewTextParser(model.UTF8Validation)
		families, err := parser.TextToMetricFamilies(r)
		if err != nil {
			return fmt.Errorf("parsing the agent's metrics: %w", err)
		}
		for name, f := range families {
			for _, m := range f.GetMetric() {
				if m.GetCounter() == nil {
					continue
				}
				key := name + "{"
				for i, l := range m.GetLabel() {
					if i > 0 {
						key += ","
					}
					key += fmt.Sprintf("%s=%q", l.GetName(), l.GetValue())
				}
				out[key+"}"] = m.GetCounter().GetValue()
			}
		}
		return nil
	})
	return out, err
}
