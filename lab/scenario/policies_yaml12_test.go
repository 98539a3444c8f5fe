package scenario

import "testing"

// The default cluster has a namespace named y: written bare, as people write it, it must stay a string.
func TestParsePoliciesReadsBareYAsAString(t *testing.T) {
	policies, err := ParsePolicies(`
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: from-y
  namespace: y
spec:
  podSelector: {}
  ingress:
  - from:
    - namespaceSelector:
        matchLabels: {kubernetes.io/metadata.name: n}
`)
	if err != nil {
		t.Fatal(err)
	}
	if len(policies) != 1 || policies[0].Namespace != "y" {
		t.Fatalf("got %+v, want one policy in namespace y", policies)
	}
	if got := policies[0].Spec.Ingress[0].From[0].NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"]; got != "n" {
		t.Errorf("matchLabels value = %q, want n", got)
	}
	if _, err := ParsePolicies("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: a, namespace: x}\nspec: {podSelector: {}, bogus: 1}\n"); err == nil {
		t.Error("an unknown field was accepted")
	}
}
