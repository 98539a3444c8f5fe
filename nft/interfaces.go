package nft

import (
	"net/netip"
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
