package scenario

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
)

const cnpFile = `name: cnp
description: a ClusterNetworkPolicy file
steps:
  - apply: |
      apiVersion: policy.networking.k8s.io/v1alpha2
      kind: ClusterNetworkPolicy
      metadata: {name: deny-y}
      spec:
        tier: Admin
        priority: 1
        subject: {namespaces: {matchLabels: {ns: y}}}
        ingress: [{action: Deny, from: [{namespaces: {}}]}]
      ---
      apiVersion: networking.k8s.io/v1
      kind: NetworkPolicy
      metadata: {namespace: x, name: np}
      spec: {podSelector: {}}
    expect:
      port: 80
      protocol: TCP
      deny: []
  - delete: [ClusterNetworkPolicy/deny-y, x/np]
    expect:
      port: 80
      protocol: TCP
      deny: []
`

func TestParseClusterNetworkPolicies(t *testing.T) {
	s := mustParse(t, cnpFile)
	if !s.UsesClusterNetworkPolicies() {
		t.Error("UsesClusterNetworkPolicies = false")
	}
	m, err := s.Steps[0].Manifests(IPv4, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.NetworkPolicies) != 1 || len(m.ClusterNetworkPolicies) != 1 {
		t.Fatalf("manifests = %+v, want one of each kind", m)
	}
	cnp := m.ClusterNetworkPolicies[0]
	// YAML 1.2: y is a string; v1alpha2 is read as v1beta1, the same schema.
	if got := cnp.Spec.Subject.Namespaces.MatchLabels["ns"]; got != "y" || cnp.APIVersion != "policy.networking.k8s.io/v1beta1" {
		t.Errorf("subject label ns = %q, apiVersion %q", got, cnp.APIVersion)
	}
	policies, clusterPolicies := s.Steps[1].ClusterPolicyDeletes()
	if !reflect.DeepEqual(policies, []string{"x/np"}) || !reflect.DeepEqual(clusterPolicies, []string{"deny-y"}) {
		t.Errorf("deletes = %v and %v", policies, clusterPolicies)
	}
	if _, err := ParsePolicies(s.Steps[0].Apply); !errors.Is(err, ErrClusterNetworkPolicy) {
		t.Errorf("ParsePolicies error = %v, want ErrClusterNetworkPolicy", err)
	}
}

func TestParseRefusesBadClusterNetworkPolicies(t *testing.T) {
	for _, tt := range []struct{ name, old, new, want string }{
		{"namespaced", "metadata: {name: deny-y}", "metadata: {name: deny-y, namespace: x}", "no namespace"},
		{"unknown version", "policy.networking.k8s.io/v1alpha2", "policy.networking.k8s.io/v1", `apiVersion "policy.networking.k8s.io/v1"`},
		{"unknown field", "priority: 1", "priority: 1\n        order: 1", `unknown field "order"`},
		{"bad delete", "ClusterNetworkPolicy/deny-y", "ClusterNetworkPolicy/Deny_Y", `want "ClusterNetworkPolicy/name"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(strings.Replace(cnpFile, tt.old, tt.new, 1)))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

// A runner without ClusterNetworkPolicy support fails such a file with that reason, before any
// change to the cluster.
func TestRunFailsClusterNetworkPolicyFilesWithoutSupport(t *testing.T) {
	lab := &fakeCluster{}
	result := Run(context.Background(), lab, mustParse(t, cnpFile), Options{Families: []Family{IPv4, IPv6}})
	if result.Passed() || len(result.Runs) != 2 {
		t.Fatalf("result = %+v, want two failed runs", result)
	}
	for _, run := range result.Runs {
		if !errors.Is(run.Err, ErrClusterNetworkPolicy) {
			t.Errorf("%s: Err = %v, want ErrClusterNetworkPolicy", run.Family, run.Err)
		}
	}
	if calls := lab.callLog(); len(calls) != 0 {
		t.Errorf("calls = %v, want none", calls)
	}
	if !strings.Contains(report(&result), "ClusterNetworkPolicy is not supported") {
		t.Errorf("report does not give the reason:\n%s", report(&result))
	}
}
