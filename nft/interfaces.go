package nft

import (
	"fmt"
	"net/netip"
	"strings"
)

// InterfaceResolver finds the host-side interface of local pods: the device the node routes each
// pod address to (in a routed CNI, the host end of the pod's veth).
type InterfaceResolver interface {
	// Interfaces returns the interface name for each address that has a direct device route; other
	// addresses are left out.
	Interfaces(addrs []netip.Addr) (map[netip.Addr]string, error)
}

// FakeInterfaces is an InterfaceResolver with a fixed answer.
type FakeInterfaces map[netip.Addr]string

var (
	_ InterfaceResolver = FakeInterfaces(nil)
)

// Interfaces returns the known names of addrs.
func (f FakeInterfaces) Interfaces(addrs []netip.Addr) (map[netip.Addr]string, error) {
	out := make(map[netip.Addr]string, len(addrs))
	for _, a := range addrs {
		if name, ok := f[a]; ok {
			out[a] = name
		}
	}
	return out, nil
}

// maxIfnamePrefixLen is the longest interface name (IFNAMSIZ less the terminating zero).
const maxIfnamePrefixLen = 15

// ValidIfnamePrefix checks a prefix of host interface names for the fail-closed mode
// (CompileInput.PodInterfacePrefix): what an interface name may start with, without nft's wildcard
// and quoting characters, and not a prefix of the loopback interface's name, whose traffic it would drop.
func ValidIfnamePrefix(prefix string) error {
	if prefix == "" || len(prefix) > maxIfnamePrefixLen {
		return fmt.Errorf("interface name prefix %q: want 1 to %d characters", prefix, maxIfnamePrefixLen)
	}
	for _, r := range prefix {
		if !ifnameChar(r) {
			return fmt.Errorf("interface name prefix %q: %q is not a letter, digit, '-', '_' or '.'", prefix, r)
		}
	}
	if strings.HasPrefix("lo", prefix) {
		return fmt.Errorf("interface name prefix %q matches the loopback interface lo", prefix)
	}
	return nil
}

func ifnameChar(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.'
}
