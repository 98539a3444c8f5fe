// Named counters: one per NetworkPolicy rule and one per default deny, so that an operator can see
// which rule admits connections and which isolation drops them.

package nft

import (
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/nftpolicy/nftpolicy/selectors"
)

// Counter is a named counter object of our table. A rule updates it with `counter name "NAME"`.
// The kernel keeps its packet and byte values while the object exists: a policy edit refills
// chains, but a counter whose name stays is never deleted and re-created (see Diff).
type Counter struct {
	Name string
	// Labels say what the counter counts. They are not part of the kernel object: the agent maps a
	// counter read from the kernel back to its labels through the committed Ruleset.
	Labels CounterLabels
}

// CounterValue is what a named counter of the table has counted since the kernel created it.
type CounterValue struct {
	Packets uint64
	Bytes   uint64
}

// CounterLabels is what a counter counts: a NetworkPolicy rule (Policy set, Rule its index in the
// direction's list), the default deny of isolated pods of a namespace (Policy empty; Pod set only
// with CompileInput.PodDenyCounters), or a verdict of an audited policy (Audit set).
type CounterLabels struct {
	Namespace string
	Direction selectors.Direction
	Policy    string
	Rule      int
	Pod       string
	// Audit is set for the counters of an audited policy (Rule unused): what it would change.
	Audit AuditVerdict
}

// DefaultDeny reports whether the counter counts a default deny rather than a policy rule.
func (l CounterLabels) DefaultDeny() bool { return l.Policy == "" }

// PolicyRule reports whether the counter counts the connections a NetworkPolicy rule accepts.
func (l CounterLabels) PolicyRule() bool { return l.Policy != "" && l.Audit == "" }

// Counter name prefixes, per direction: a policy rule's connections are allowed, a default deny's
// dropped. Kubernetes names hold no "_", which separates the parts.
const (
	allowIngressCounterPrefix = "allow-in_"
	allowEgressCounterPrefix  = "allow-eg_"
	denyIngressCounterPrefix  = "deny-in_"
	denyEgressCounterPrefix   = "deny-eg_"
)

// ruleCounter names the counter of one rule of one policy and direction, and records its labels.
// Every nft rule compiled from it, for every family, peer kind and policy chain variant, shares it.
func ruleCounter(r selectors.Rule, dir selectors.Direction) Counter {
	prefix := allowIngressCounterPrefix
	if dir == selectors.Egress {
		prefix = allowEgressCounterPrefix
	}
	index := strconv.Itoa(r.Index)
	return Counter{
		Name:   truncatedName(prefix+r.Policy.Namespace+"_"+r.Policy.Name+"_"+index, string(dir)+"/"+r.Policy.String()+"#"+index),
		Labels: CounterLabels{Namespace: r.Policy.Namespace, Direction: dir, Policy: r.Policy.Name, Rule: r.Index},
	}
}

// denyCounter names the counter of the default deny of one direction of a namespace's isolated
// pods, or of one pod when perPod: a per-pod counter's cardinality grows with the pods, so it is an
// option.
func denyCounter(pod selectors.LocalPod, dir selectors.Direction, perPod bool) Counter {
	prefix := denyIngressCounterPrefix
	if dir == selectors.Egress {
		prefix = denyEgressCounterPrefix
	}
	labels := CounterLabels{Namespace: pod.Namespace, Direction: dir}
	if !perPod {
		return Counter{Name: truncatedName(prefix+pod.Namespace, string(dir)+"/"+pod.Namespace), Labels: labels}
	}
	labels.Pod = pod.Name
	return Counter{Name: truncatedName(prefix+pod.Namespace+"_"+pod.Name, string(dir)+"/"+pod.Key()), Labels: labels}
}

// countersOf returns the counters of a compile, sorted by name.
func countersOf(byName map[string]CounterLabels) []Counter {
	if len(byName) == 0 {
		return nil
	}
	out := make([]Counter, 0, len(byName))
	for _, name := range slices.Sorted(maps.Keys(byName)) {
		out = append(out, Counter{Name: name, Labels: byName[name]})
	}
	return out
}

// CounterByName returns the counter of a name, for mapping a counter read from the kernel back to
// its labels.
func (rs *Ruleset) CounterByName(name string) (Counter, bool) {
	i, ok := slices.BinarySearchFunc(rs.Counters, name, func(c Counter, n string) int { return strings.Compare(c.Name, n) })
	if !ok {
		return Counter{}, false
	}
	return rs.Counters[i], true
}
