package scenario

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

// resolverOf resolves pods from a fixed table.
func resolverOf(ips map[string]string) Resolver {
	return func(pod string) (netip.Addr, error) {
		ip, ok := ips[pod]
		if !ok {
			return netip.Addr{}, fmt.Errorf("no pod %s", pod)
		}
		return netip.ParseAddr(ip)
	}
}

func TestSubstitute(t *testing.T) {
	resolve := resolverOf(map[string]string{
		"x/a": "10.244.1.7", "y/b": "10.244.2.9",
		"x/a6": "fd00:10:244:1::7", "y/b6": "fd00:10:244:2::9",
		"x/mapped": "::ffff:10.244.3.3",
	})
	tests := []struct {
		family     Family
		text, want string
	}{
		{IPv4, "cidr: {{ip x/a}}", "cidr: 10.244.1.7"},
		{IPv4, "cidr: {{hostcidr x/a}}", "cidr: 10.244.1.7/32"},
		{IPv4, "cidr: {{cidr x/a 24}}", "cidr: 10.244.1.0/24"},
		{IPv4, "cidr: {{cidr x/a 0}}", "cidr: 0.0.0.0/0"},
		{IPv4, "{{ cidr  y/b   16 }} and {{hostcidr x/a}}", "10.244.0.0/16 and 10.244.1.7/32"},
		{IPv4, "{{ip x/mapped}}", "10.244.3.3"},
		{IPv6, "cidr: {{ip x/a6}}", "cidr: fd00:10:244:1::7"},
		{IPv6, "cidr: {{hostcidr x/a6}}", "cidr: fd00:10:244:1::7/128"},
		{IPv6, "cidr: {{cidr y/b6 64}}", "cidr: fd00:10:244:2::/64"},
		{IPv6, "cidr: {{cidr y/b6 120}}", "cidr: fd00:10:244:2::/120"},
		{IPv4, "podSelector: {matchLabels: {app: x}}", "podSelector: {matchLabels: {app: x}}"},
		{IPv4, "", ""},
	}
	for _, tt := range tests {
		got, err := Substitute(tt.text, tt.family, resolve)
		if err != nil {
			t.Errorf("Substitute(%q, %s): %v", tt.text, tt.family, err)
			continue
		}
		if got != tt.want {
			t.Errorf("Substitute(%q, %s) = %q, want %q", tt.text, tt.family, got, tt.want)
		}
	}
}

func TestSubstituteErrors(t *testing.T) {
	resolve := resolverOf(map[string]string{"x/a": "10.244.1.7", "x/a6": "fd00::7"})
	tests := []struct {
		family     Family
		text, want string
	}{
		{IPv4, "{{ip x/q}}", "no pod x/q"},
		{IPv4, "{{ip}}", "want {{ip namespace/pod}}"},
		{IPv4, "{{ip x/a x/a}}", "want {{ip namespace/pod}}"},
		{IPv4, "{{hostcidr a}}", `reference "a"`},
		{IPv4, "{{cidr x/a}}", "want {{cidr namespace/pod prefix-length}}"},
		{IPv4, "{{cidr x/a /24}}", `prefix length "/24"`},
		{IPv4, "{{cidr x/a -1}}", `prefix length "-1"`},
		{IPv4, "{{cidr x/a 33}}", "longer than an ipv4 address"},
		{IPv6, "{{cidr x/a6 129}}", "longer than an ipv6 address"},
		{IPv4, "{{net x/a}}", `unknown placeholder "net"`},
		{IPv4, "{{}}", "empty placeholder"},
		{IPv4, "cidr: {{ip x/a", "malformed placeholder"},
		{IPv4, "cidr: {{ip {{ip x/a}}", "malformed placeholder"},
		{IPv4, "{{ip x/a6}}", "is not ipv4"},
		{IPv6, "{{ip x/a}}", "is not ipv6"},
	}
	for _, tt := range tests {
		_, err := Substitute(tt.text, tt.family, resolve)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Substitute(%q, %s) error = %v, want one containing %q", tt.text, tt.family, err, tt.want)
		}
	}
}

func TestParsePolicies(t *testing.T) {
	const doc = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: %s, namespace: x}\nspec: {podSelector: {}}\n"
	tests := []struct {
		name, text string
		want       []string
	}{
		{"empty", "", nil},
		{"blank", " \n\t\n", nil},
		{"separators and comments only", "---\n# nothing\n---\n", nil},
		{"one", fmt.Sprintf(doc, "p1"), []string{"x/p1"}},
		{"two with an empty document between", fmt.Sprintf(doc, "p1") + "---\n---\n" + fmt.Sprintf(doc, "p2"), []string{"x/p1", "x/p2"}},
		{"leading separator", "---\n" + fmt.Sprintf(doc, "p1"), []string{"x/p1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			policies, err := ParsePolicies(tt.text)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range policies {
				got = append(got, p.Namespace+"/"+p.Name)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("policies = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestStepPoliciesResolvePerFamily(t *testing.T) {
	s, err := Load("testdata/every-key.yaml")
	if err != nil {
		t.Fatal(err)
	}
	resolve := resolverOf(map[string]string{"ops/admin": "10.244.1.10", "web/back": "10.244.0.11"})
	manifests, err := s.Steps[0].Manifests(IPv4, resolve)
	if err != nil {
		t.Fatal(err)
	}
	policies := manifests.NetworkPolicies
	block := policies[0].Spec.Ingress[0].From[1].IPBlock
	if block.CIDR != "10.244.1.0/24" || len(block.Except) != 1 || block.Except[0] != "10.244.1.10/32" {
		t.Errorf("ipBlock = %+v", block)
	}
	if got := policies[0].Annotations["probe-target"]; got != "10.244.0.11" {
		t.Errorf("annotation = %q", got)
	}
	resolve6 := resolverOf(map[string]string{"ops/admin": "fd00:10:244:1::a", "web/back": "fd00:10:244::b"})
	manifests, err = s.Steps[0].Manifests(IPv6, resolve6)
	if err != nil {
		t.Fatal(err)
	}
	policies = manifests.NetworkPolicies
	block = policies[0].Spec.Ingress[0].From[1].IPBlock
	if block.CIDR != "fd00::/24" || block.Except[0] != "fd00:10:244:1::a/128" {
		t.Errorf("ipBlock = %+v", block)
	}
}
