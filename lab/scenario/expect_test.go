package scenario

import (
	"strings"
	"testing"
)

func TestExpandExpectDefaultCluster(t *testing.T) {
	c := DefaultCluster()
	got, err := ExpandExpect(c, Expect{Port: 80, Protocol: ProtocolTCP, Deny: []string{"x/b -> x/a", "z/c -> x/a", "x/b -> x/a"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 9*8 {
		t.Errorf("%d probed pairs, want 72 (every ordered pair of 9 pods but self pairs)", len(got))
	}
	for p, allowed := range got {
		if p.Src == p.Dst {
			t.Errorf("self pair %s probed", p)
		}
		denied := p == Pair{"x/b", "x/a"} || p == Pair{"z/c", "x/a"}
		if allowed == denied {
			t.Errorf("%s allowed = %v", p, allowed)
		}
	}
}

func TestExpandExpectOnlyProbesServingDestinations(t *testing.T) {
	c := &ClusterSpec{Namespaces: []Namespace{{Name: "default", Pods: []Pod{
		{Name: "redis", Ports: []Port{{Port: 6379, Protocol: ProtocolTCP}}},
		{Name: "web", Ports: []Port{{Port: 6379, Protocol: ProtocolUDP}}},
		{Name: "busybox"},
	}}}}
	got, err := ExpandExpect(c, Expect{Port: 6379, Protocol: ProtocolTCP, Deny: []string{"default/busybox -> default/redis"}})
	if err != nil {
		t.Fatal(err)
	}
	want := map[Pair]bool{
		{"default/web", "default/redis"}:     true,
		{"default/busybox", "default/redis"}: false,
	}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for p, v := range want {
		if got[p] != v {
			t.Errorf("%s = %v, want %v", p, got[p], v)
		}
	}
	if pairs := c.ProbedPairs(6379, ProtocolTCP); pairs[0] != (Pair{"default/web", "default/redis"}) {
		t.Errorf("pairs not in matrix order: %v", pairs)
	}

	for deny, why := range map[string]string{
		"default/redis -> default/busybox": "default/busybox does not serve TCP/6379",
		"default/redis -> default/web":     "default/web does not serve TCP/6379",
		"default/redis -> default/redis":   "self pairs are never probed",
		"other/redis -> default/redis":     "pod other/redis is not in the cluster",
	} {
		_, err := ExpandExpect(c, Expect{Port: 6379, Protocol: ProtocolTCP, Deny: []string{deny}})
		if err == nil || !strings.Contains(err.Error(), deny) || !strings.Contains(err.Error(), why) {
			t.Errorf("deny %q: error = %v, want one naming the pair and %q", deny, err, why)
		}
	}
}

func TestParsePair(t *testing.T) {
	for in, want := range map[string]Pair{
		"x/b -> x/a":       {"x/b", "x/a"},
		"x/b->x/a":         {"x/b", "x/a"},
		"  y/c   ->  z/a ": {"y/c", "z/a"},
	} {
		got, err := ParsePair(in)
		if err != nil || got != want {
			t.Errorf("ParsePair(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"x/b", "x/b -> ", "xb -> x/a", "x/b -> x/a -> y/a", "x/b => x/a"} {
		if _, err := ParsePair(in); err == nil {
			t.Errorf("ParsePair(%q) succeeded", in)
		}
	}
}
