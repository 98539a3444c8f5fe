package scenario

import "fmt"

// ProbedPairs lists the pairs an expectation for port and protocol probes: every ordered pair
// src -> dst with src != dst where dst serves port over protocol, in matrix order (by source,
// then destination, each in the cluster's order).
func (c *ClusterSpec) ProbedPairs(port int, protocol string) []Pair {
	serving := c.Serving(port, protocol)
	var pairs []Pair
	for _, src := range c.PodRefs() {
		for _, dst := range serving {
			if src != dst {
				pairs = append(pairs, Pair{Src: src, Dst: dst})
			}
		}
	}
	return pairs
}

// Serving lists the pods serving port over protocol, in the cluster's order: the destinations of an
// expectation's matrix.
func (c *ClusterSpec) Serving(port int, protocol string) []string {
	var serving []string
	for _, ref := range c.PodRefs() {
		if pod, _ := c.Pod(ref); pod.Serves(port, protocol) {
			serving = append(serving, ref)
		}
	}
	return serving
}

// ExpandExpect turns an expectation into the verdict of every probed pair: false (blocked) for the
// pairs under deny, true (allowed) for every other probed pair. A deny pair that is not probed is an
// error naming it and why.
func ExpandExpect(c *ClusterSpec, e Expect) (map[Pair]bool, error) {
	expected := map[Pair]bool{}
	for _, p := range c.ProbedPairs(e.Port, e.Protocol) {
		expected[p] = true
	}
	for _, s := range e.Deny {
		p, err := ParsePair(s)
		if err != nil {
			return nil, fmt.Errorf("deny: %w", err)
		}
		if _, ok := expected[p]; !ok {
			return nil, fmt.Errorf("deny: pair %q is not probed: %s", s, whyNotProbed(c, p, e))
		}
		expected[p] = false
	}
	return expected, nil
}

func whyNotProbed(c *ClusterSpec, p Pair, e Expect) string {
	if _, ok := c.Pod(p.Src); !ok {
		return fmt.Sprintf("pod %s is not in the cluster", p.Src)
	}
	dst, ok := c.Pod(p.Dst)
	switch {
	case !ok:
		return fmt.Sprintf("pod %s is not in the cluster", p.Dst)
	case p.Src == p.Dst:
		return "self pairs are never probed"
	case !dst.Serves(e.Port, e.Protocol):
		return fmt.Sprintf("%s does not serve %s", p.Dst, e)
	}
	return "unknown reason"
}
