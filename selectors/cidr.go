package selectors

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// parseCIDR parses an ipBlock cidr or except the way the API server stored it, leniently: host bits
// are masked (a stored "10.0.0.1/8" means 10.0.0.0/8, as objects created before strict validation
// may hold) and IPv4 octets with leading zeros are read as decimal.
func parseCIDR(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(strings.TrimSpace(s))
	if err != nil {
		relaxed, ok := stripIPv4LeadingZeros(strings.TrimSpace(s))
		if !ok {
			return netip.Prefix{}, fmt.Errorf("parsing CIDR %q: %w", s, err)
		}
		if p, err = netip.ParsePrefix(relaxed); err != nil {
			return netip.Prefix{}, fmt.Errorf("parsing CIDR %q: %w", s, err)
		}
	}
	if p.Addr().Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("parsing CIDR %q: zones are not allowed", s)
	}
	return p.Masked(), nil
}

// stripIPv4LeadingZeros rewrites "010.001.0.0/16" as "10.1.0.0/16". It reports false when s is not
// a dotted-quad prefix.
func stripIPv4LeadingZeros(s string) (string, bool) {
	addr, bits, ok := strings.Cut(s, "/")
	if !ok {
		return "", false
	}
	octets := strings.Split(addr, ".")
	if len(octets) != 4 {
		return "", false
	}
	for i, o := range octets {
		if o == "" || len(o) > 3 {
			return "", false
		}
		n, err := strconv.ParseUint(o, 10, 8)
		if err != nil {
			return "", false
		}
		octets[i] = strconv.FormatUint(n, 10)
	}
	return strings.Join(octets, ".") + "/" + bits, true
}
