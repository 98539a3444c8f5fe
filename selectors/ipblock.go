package selectors

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"
)

// compileIPBlock turns an ipBlock into address ranges: cidr minus every except. An ipBlock with an
// unparsable cidr or except matches nothing at all: dropping only the bad except would widen it.
func (c *policyCompiler) compileIPBlock(b *networkingv1.IPBlock, field string) (peer, bool) {
	cidr, err := parseCIDR(b.CIDR)
	if err != nil {
		c.problem(field+".cidr", err.Error()+"; the ipBlock matches nothing")
		return peer{}, false
	}
	ranges := []AddrRange{rangeOfPrefix(cidr)}
	excepts := make([]string, 0, len(b.Except))
	exceptPrefixes := make([]netip.Prefix, 0, len(b.Except))
	for i, s := range b.Except {
		except, err := parseCIDR(s)
		if err != nil {
			c.problem(fmt.Sprintf("%s.except[%d]", field, i), err.Error()+"; the ipBlock matches nothing")
			return peer{}, false
		}
		// "Except values will be rejected if they are outside the cidr range". One that slipped
		// through is reported; subtracting it below still removes only what it covers.
		if except.Addr().BitLen() != cidr.Addr().BitLen() || except.Bits() < cidr.Bits() || !cidr.Contains(except.Addr()) {
			c.problem(fmt.Sprintf("%s.except[%d]", field, i), fmt.Sprintf("%s is not within cidr %s", except, cidr))
		}
		ranges = subtractRange(ranges, rangeOfPrefix(except))
		excepts = append(excepts, except.String())
		exceptPrefixes = append(exceptPrefixes, except)
	}
	sort.Strings(excepts)
	canonical := "ipBlock=" + cidr.String()
	if len(excepts) > 0 {
		canonical += " except [" + strings.Join(excepts, ",") + "]"
	}
	return peer{canonical: canonical, isIPBlock: true, ipRanges: normalizeRanges(ranges), cidr: cidr, excepts: exceptPrefixes}, true
}
