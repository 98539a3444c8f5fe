// Drop logging: a rate-limited `log group G` before the final drops that new connections meet, the
// default deny of an isolated pod's chain and the anti-spoofing drops, so that an agent reading the
// NFLOG group can say which drop point refused a connection.

package nft

import (
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/nftpolicy/nftpolicy/selectors"
)

// DropLog turns drop logging on (CompileInput.DropLog). Every logged drop is preceded by rules of the
// shape
//
//	update @droplog-pairs-v4 { ip saddr . ip daddr limit rate 5/second } limit rate 50/second log prefix "np/in_ns_pod" group 7
//
// one per family: the per-pair limit keeps one noisy pair of addresses from using up the drop
// point's own limit, which in turn bounds what the node sends to userspace.
type DropLog struct {
	// Group is the NFLOG group the records go to.
	Group uint16
	// PairRate is the packets per second logged for one source and destination address pair at one
	// drop point; Rate the packets per second logged at one drop point.
	PairRate, Rate uint32
	// Pods are the local pods, by selectors.LocalPod.Key, whose default denies are logged.
	Pods map[string]bool
	// AllPods are the local pods that also log the first packet of each allowed connection: a log
	// rule before each accept of their policies' rules, whose prefix is LogPrefix and the rule's
	// counter name (see Ruleset.CounterByName). Their policy chains are variants of their own.
	AllPods map[string]bool
	// AntiSpoof logs the anti-spoofing drops (they belong to no pod).
	AntiSpoof bool
}

// The drop log's sets and prefixes. A prefix is LogPrefix followed by the drop point: the name of
// the pod chain whose default deny drops (in_... or eg_..., at most maxNameLen bytes), or
// LogPrefixAntiSpoof.
const (
	setDropLogPairsV4 = "droplog-pairs-v4"
	setDropLogPairsV6 = "droplog-pairs-v6"
	// dropLogPairTimeout is how long a pair stays in a per-pair limit set after its last logged drop.
	dropLogPairTimeout = time.Minute
	// dropLogPairSetSize bounds the pairs tracked at once; a pair that finds the set full is not logged.
	dropLogPairSetSize = 65535

	LogPrefix          = "np/"
	LogPrefixAntiSpoof = "spoof"
)

// dropLogSetNames are the sets dropLogSets makes.
var dropLogSetNames = []string{setDropLogPairsV4, setDropLogPairsV6}

// dropLogSets returns the per-pair limit sets, when logging is on.
func dropLogSets(dl *DropLog) []*Set {
	if dl == nil {
		return nil
	}
	return []*Set{
		{Name: setDropLogPairsV4, Type: KeyIPv4Pair, Size: dropLogPairSetSize, Dynamic: true, Timeout: dropLogPairTimeout, Comment: "drop log per-pair limits"},
		{Name: setDropLogPairsV6, Type: KeyIPv6Pair, Size: dropLogPairSetSize, Dynamic: true, Timeout: dropLogPairTimeout, Comment: "drop log per-pair limits"},
	}
}

// logRules returns the rules that log, for each family of fs, the packets matching ms at the drop
// point point.
func (dl *DropLog) logRules(point string, fs familySet, ms ...Match) []Rule {
	var rules []Rule
	for _, f := range fs.list() {
		rules = append(rules, dl.logRulesOf(f, LogPrefix+point, ms...)...)
	}
	return rules
}

// logRulesOf returns the rule that logs the packets of family f matching ms with prefix.
func (dl *DropLog) logRulesOf(f Family, prefix string, ms ...Match) []Rule {
	set := setDropLogPairsV4
	if f == IPv6 {
		set = setDropLogPairsV6
	}
	matches := append(slices.Clone(ms), PairRateLimit{Family: f, Set: set, Rate: dl.PairRate}, RateLimit{Rate: dl.Rate})
	return []Rule{{Matches: matches, Log: &Log{Group: dl.Group, Prefix: prefix}}}
}

// logsAccepts reports whether a local pod logs the first packet of its allowed connections (dl may
// be nil).
func (dl *DropLog) logsAccepts(pod selectors.LocalPod) bool {
	return dl != nil && dl.AllPods[pod.Key()]
}

// sameLimits reports whether two configurations compile the same log rules.
func (dl DropLog) sameLimits(other *DropLog) bool {
	return other != nil && dl.Group == other.Group && dl.PairRate == other.PairRate && dl.Rate == other.Rate
}

// limitsEqual reports whether two configurations (nil: off) compile the same log rules.
func limitsEqual(a, b *DropLog) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.sameLimits(b)
}

// antiSpoofLogRules returns the rules logging an anti-spoofing drop matching ms, when dl logs them
// (dl may be nil).
func (dl *DropLog) antiSpoofLogRules(fs familySet, ms ...Match) []Rule {
	if dl == nil || !dl.AntiSpoof {
		return nil
	}
	return dl.logRules(LogPrefixAntiSpoof, fs, ms...)
}

// logsPod reports whether the default denies of a local pod are logged.
func (dl *DropLog) logsPod(pod selectors.LocalPod) bool {
	return dl != nil && dl.Pods[pod.Key()]
}

// DropPoint is what a log prefix names: a pod chain's default deny, the anti-spoofing drops, or
// the accept of a policy rule (DropLog.AllPods).
type DropPoint struct {
	AntiSpoof bool
	// WouldDrop: Chain is a pod chain that only audited policies isolate, and the connection is one
	// they would drop.
	WouldDrop bool
	// Chain is the pod chain (see Ruleset.Chains) whose final drop logged.
	Chain string
	// Counter is the counter of the policy rule whose accept logged, or of the audited policy
	// whose rule would allow (see Ruleset.CounterByName).
	Counter string
}

// ParseLogPrefix returns the drop point a log prefix names, or false when the prefix is not one of
// ours.
func ParseLogPrefix(prefix string) (DropPoint, bool) {
	point, ok := strings.CutPrefix(prefix, LogPrefix)
	switch {
	case !ok || point == "":
		return DropPoint{}, false
	case point == LogPrefixAntiSpoof:
		return DropPoint{AntiSpoof: true}, true
	case strings.HasPrefix(point, podIngressChainPrefix), strings.HasPrefix(point, podEgressChainPrefix):
		return DropPoint{Chain: point}, true
	case strings.HasPrefix(point, allowIngressCounterPrefix), strings.HasPrefix(point, allowEgressCounterPrefix),
		strings.HasPrefix(point, auditAllowIngressCounterPrefix), strings.HasPrefix(point, auditAllowEgressCounterPrefix):
		return DropPoint{Counter: point}, true
	case strings.HasPrefix(point, LogPrefixWouldDrop):
		chain := strings.TrimPrefix(point, LogPrefixWouldDrop)
		if !strings.HasPrefix(chain, podIngressChainPrefix) && !strings.HasPrefix(chain, podEgressChainPrefix) {
			return DropPoint{}, false
		}
		return DropPoint{Chain: chain, WouldDrop: true}, true
	default:
		return DropPoint{}, false
	}
}

// PodChainName is the name of the chain of one isolated direction of a local pod, which a drop
// point names.
func PodChainName(pod selectors.LocalPod, dir selectors.Direction) string {
	return podChainName(pod, dir)
}

// dropLogShapeEqual reports whether two drop log configurations compile the same static chains and
// sets and the same log rules: everything but which pods log.
func dropLogShapeEqual(a, b *DropLog) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.AntiSpoof == b.AntiSpoof && a.sameLimits(b)
}

// dropLogEqual compares two drop log configurations (nil: off).
func dropLogEqual(a, b *DropLog) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Group == b.Group && a.PairRate == b.PairRate && a.Rate == b.Rate && a.AntiSpoof == b.AntiSpoof &&
		maps.Equal(a.Pods, b.Pods) && maps.Equal(a.AllPods, b.AllPods)
}
