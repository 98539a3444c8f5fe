package e2e

import (
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/nftpolicy/nftpolicy/lab/scenario"
)

// oracleDenyIngressX is a file whose deny list is exact for a namespace-wide ingress deny in x,
// written out here so the self-checks below do not depend on any scenario file.
const oracleDenyIngressX = `
name: oracle-self-check
description: "An ingress deny for all of x."
steps:
  - apply: |
      apiVersion: networking.k8s.io/v1
      kind: NetworkPolicy
      metadata: {name: deny, namespace: x}
      spec:
        podSelector: {}
        policyTypes: [Ingress]
    expect:
      port: 80
      protocol: TCP
      deny: [%s]
`

func oracleDenyIngressXPairs() []string {
	var pairs []string
	for _, dst := range []string{"x/a", "x/b", "x/c"} {
		for _, ns := range []string{"x", "y", "z"} {
			for _, pod := range []string{"a", "b", "c"} {
				if src := ns + "/" + pod; src != dst {
					pairs = append(pairs, `"`+src+" -> "+dst+`"`)
				}
			}
		}
	}
	return pairs
}

func oracleRunText(t *testing.T, pairs []string) scenario.Result {
	t.Helper()
	s, err := scenario.Parse([]byte(strings.Replace(oracleDenyIngressX, "%s", strings.Join(pairs, ", "), 1)))
	if err != nil {
		t.Fatal(err)
	}
	return scenario.Run(context.Background(), newOracleCluster(oracleIPPlans[0]), s, oracleOptions())
}

// TestOracleRejectsWrongDenyLists guards the harness itself: the exact list passes, and a list
// missing a pair or holding one too many fails, so a green oracle run means something.
func TestOracleRejectsWrongDenyLists(t *testing.T) {
	exact := oracleDenyIngressXPairs()
	if r := oracleRunText(t, exact); !r.Passed() {
		t.Fatalf("the exact deny list failed against the oracle")
	}
	if r := oracleRunText(t, exact[1:]); r.Passed() {
		t.Errorf("a deny list missing %s passed", exact[0])
	}
	if r := oracleRunText(t, append(exact, `"x/a -> y/a"`)); r.Passed() {
		t.Errorf("a deny list with the extra pair x/a -> y/a passed")
	}
}

// yaml11Boolean finds a bare y, n, yes, no, on or off used as a value or list item. The apply text
// of a scenario is read by sigs.k8s.io/yaml, which follows YAML 1.1: there `namespace: y` or
// `values: [y]` is the boolean true and silently becomes the string "true". Namespace y of the
// default cluster makes this an easy mistake, so such values must be quoted.
var yaml11Boolean = regexp.MustCompile(`(?m)(?:^[ \t]*-|[:\[,])[ \t]*(?i:y|n|yes|no|on|off)[ \t]*(?:[,}\]#]|$)`)

// TestOracleApplyTextsQuoteYAML11Booleans lints every scenario's apply texts for that trap.
func TestOracleApplyTextsQuoteYAML11Booleans(t *testing.T) {
	for text, want := range map[string]bool{
		"namespace: y": true, "values: [x, y]": true, "  - n": true, "{ns: y}": true,
		`namespace: "y"`: false, "name: allow-ns-y": false, "values: [yy]": false,
	} {
		if got := yaml11Boolean.MatchString(text); got != want {
			t.Fatalf("lint on %q: got %v, want %v", text, got, want)
		}
	}
	paths, err := filepath.Glob(filepath.Join("scenarios", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range paths {
		s, err := scenario.Load(path)
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		for i, st := range s.Steps {
			for _, m := range yaml11Boolean.FindAllString(st.Apply, -1) {
				t.Errorf("%s: steps[%d].apply: %q reads as a YAML 1.1 boolean; quote it", path, i, strings.TrimSpace(m))
			}
		}
	}
}
