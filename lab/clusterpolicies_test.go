package lab

import (
	"bytes"
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"

	"github.com/nftpolicy/nftpolicy/lab/scenario"
)

const cnpScenario = `name: cnp-lab
description: a ClusterNetworkPolicy file on the lab
cluster:
  namespaces:
    - name: cnp-lab
      pods:
        - {name: a, labels: {pod: a}, ports: [{port: 80, protocol: TCP}]}
        - {name: b, labels: {pod: b}, ports: [{port: 80, protocol: TCP}]}
steps:
  - apply: |
      apiVersion: policy.networking.k8s.io/v1beta1
      kind: ClusterNetworkPolicy
      metadata: {name: cnp-lab-deny}
      spec:
        tier: Admin
        priority: 1
        subject: {namespaces: {matchLabels: {kubernetes.io/metadata.name: cnp-lab}}}
        ingress: [{action: Deny, from: [{namespaces: {}}]}]
    expect: {port: 80, protocol: TCP, deny: ["cnp-lab/a -> cnp-lab/b", "cnp-lab/b -> cnp-lab/a"]}
`

// The lab serves ClusterNetworkPolicies, its agents enforce them (a scenario file that uses them
// passes), and it removes the ones it created at Setup and Teardown.
func TestClusterNetworkPolicies(t *testing.T) {
	requireLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	l, err := Start(ctx, testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })

	s, err := scenario.Parse([]byte(cnpScenario))
	if err != nil {
		t.Fatal(err)
	}
	result := scenario.Run(ctx, l, s, scenario.Options{Families: l.Families()})
	if !result.Passed() {
		var report bytes.Buffer
		scenario.WriteResult(&report, &result)
		t.Errorf("the ClusterNetworkPolicy file failed on the lab:\n%s", report.String())
	}

	// Apply and delete through the lab, and the clean-up of Setup.
	manifests, err := s.Steps[0].Manifests(scenario.IPv4, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.ApplyClusterPolicies(ctx, manifests.ClusterNetworkPolicies); err != nil {
		t.Fatal(err)
	}
	if err := l.ApplyClusterPolicies(ctx, manifests.ClusterNetworkPolicies); err != nil {
		t.Fatalf("replacing: %v", err)
	}
	// A policy someone else made, which selects no pod (Setup must still reach every pod).
	other := &v1beta1.ClusterNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "not-the-lab"}, Spec: *manifests.ClusterNetworkPolicies[0].Spec.DeepCopy()}
	other.Spec.Subject.Namespaces = &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "no-such-namespace"}}
	if err := l.client.Create(ctx, other); err != nil {
		t.Fatal(err)
	}
	if err := l.Setup(ctx, *s.Cluster); err != nil {
		t.Fatal(err)
	}
	var list v1beta1.ClusterNetworkPolicyList
	if err := l.client.List(ctx, &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 || list.Items[0].Name != "not-the-lab" {
		t.Errorf("after Setup: %d policies, want only not-the-lab", len(list.Items))
	}
	if err := l.ApplyClusterPolicies(ctx, manifests.ClusterNetworkPolicies); err != nil {
		t.Fatal(err)
	}
	if err := l.DeleteClusterPolicies(ctx, []string{"cnp-lab-deny"}); err != nil {
		t.Fatal(err)
	}
	if err := l.DeleteClusterPolicies(ctx, []string{"cnp-lab-deny"}); err == nil {
		t.Error("deleting a missing ClusterNetworkPolicy succeeded")
	}
	if err := l.Teardown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := l.client.Get(ctx, client.ObjectKeyFromObject(other), other); err != nil {
		t.Errorf("Teardown removed a policy the lab did not create: %v", err)
	}
}
