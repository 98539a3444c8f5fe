// Sets: peer sets, service sets, port sets and the anti-spoofing sets of local pods.

package nft

import (
	"net/netip"
	"slices"
	"strings"

	"github.com/nftpolicy/nftpolicy/selectors"
)

// setRef is what a set that chains refer to is lowered from: one family's half of an AddressSet
// (kind peerSetPrefix) or a ServiceSet (serviceSetPrefix), by ID, or a list of ports (portSetPrefix).
type setRef struct {
	kind   string
	id     string
	family Family
	ports  []PortRange
}

// changed reports whether the model's set behind ref may differ from the previous model's.
func (ref setRef) changed(c *selectors.Changes) bool {
	switch ref.kind {
	case peerSetPrefix:
		return c.AddressSet(ref.id)
	case serviceSetPrefix:
		return c.ServiceSet(ref.id)
	}
	return false // port sets are named after their ports
}

// lower builds the set named name from the model; prev is its previous version (nil: none), whose
// size it keeps while the elements fit.
func (ref setRef) lower(m *selectors.Model, name string, prev *Set) *Set {
	switch ref.kind {
	case peerSetPrefix:
		return lowerPeerSet(m, name, ref.id, ref.family, prev)
	case serviceSetPrefix:
		return lowerServiceSet(m, name, ref.id, ref.family, prev)
	}
	return lowerPortSet(name, ref.ports)
}

// lowerPeerSet lowers the family's half of an AddressSet. Peers chosen only by selectors are pod
// addresses: a hash set, one element per address and an O(1) lookup. Only a definition with an
// ipBlock needs an interval set, for its ranges.
func lowerPeerSet(m *selectors.Model, name, id string, f Family, prev *Set) *Set {
	as, _ := findAddressSet(m, id)
	set := &Set{Name: name, Type: addrKey(f), Interval: as.HasIPBlocks, Comment: truncateComment(as.Description)}
	if len(as.Ranges) > 0 {
		set.Elements = make([]Element, 0, len(as.Ranges)) // exact for pods, one address each
	}
	for _, r := range as.Ranges {
		if FamilyOf(r.From) != f {
			continue
		}
		if set.Interval {
			set.Elements = append(set.Elements, Element{Addr: r.From, AddrEnd: r.To})
			continue
		}
		for a := r.From; ; a = a.Next() {
			set.Elements = append(set.Elements, Element{Addr: a})
			if a == r.To {
				break
			}
		}
	}
	SortElements(set.Elements)
	if !set.Interval {
		set.Size = setSize(len(set.Elements), prev)
	}
	return set
}

// lowerServiceSet lowers the family's half of a ServiceSet: (address, protocol, port) of the pods
// that define the named port.
func lowerServiceSet(m *selectors.Model, name, id string, f Family, prev *Set) *Set {
	keyType := KeyIPv4ProtoPort
	if f == IPv6 {
		keyType = KeyIPv6ProtoPort
	}
	set := &Set{Name: name, Type: keyType}
	if ss, found := findServiceSet(m, id); found {
		set.Comment = truncateComment(ss.Description)
		for _, s := range ss.Services {
			if FamilyOf(s.Addr) == f {
				set.Elements = append(set.Elements, Element{Addr: s.Addr, Proto: protoNumber(s.Protocol), Port: s.Port})
			}
		}
	}
	SortElements(set.Elements)
	set.Size = setSize(len(set.Elements), prev)
	return set
}

// lowerPortSet builds the interval set of ports named after ranges (see chainCompiler.portSet).
func lowerPortSet(name string, ranges []PortRange) *Set {
	_, text := portSetName(ranges)
	set := &Set{Name: name, Type: KeyPort, Interval: true, Comment: truncateComment("ports " + strings.Trim(text, "{ }"))}
	for _, r := range ranges {
		set.Elements = append(set.Elements, Element{Port: r.First, PortEnd: r.Last})
	}
	return set
}

// Sizes of hash sets (see Set.Size). A set is created with room for twice its elements, in powers of
// two, and keeps its size while it grows into that room or shrinks to a small part of it. A new size
// redefines the set: Diff deletes and re-creates it with the chains that use it, in one transaction.
const (
	minSetSize     = 64
	setShrinkBelow = 16 // a set holding less than 1/16 of its size gets a smaller one
)

// setSize returns the size of a hash set of n elements whose previous version was prev (nil: none).
func setSize(n int, prev *Set) uint32 {
	if prev != nil && prev.Size > 0 && n <= int(prev.Size) && (prev.Size == minSetSize || n >= int(prev.Size)/setShrinkBelow) {
		return prev.Size
	}
	size := uint32(minSetSize)
	for int(size) < 2*n {
		size *= 2
	}
	return size
}

// ifaceAddr is a local pod address with its host interface.
type ifaceAddr struct {
	addr  netip.Addr
	iface string
}

// antiSpoofSetNames are the sets buildAntiSpoofSets makes.
var antiSpoofSetNames = []string{setPodIfaces, setPodIfaceAddrsV4, setPodIfaceAddrsV6, setPodAddrsV4, setPodAddrsV6}

// antiSpoofPairs returns the local pod addresses with a known interface, in the model's order.
func antiSpoofPairs(in CompileInput) []ifaceAddr {
	var pairs []ifaceAddr
	for _, pod := range in.Model.LocalPods {
		for _, ip := range pod.IPs {
			if iface, ok := in.Interfaces[ip]; ok {
				pairs = append(pairs, ifaceAddr{addr: ip, iface: iface})
			}
		}
	}
	return pairs
}

// buildAntiSpoofSets builds the sets of local pod interfaces and addresses.
func buildAntiSpoofSets(local []ifaceAddr) []*Set {
	ifaces := &Set{Name: setPodIfaces, Type: KeyIfname, Comment: "host interfaces of local pods"}
	pairs := map[Family]*Set{
		IPv4: {Name: setPodIfaceAddrsV4, Type: KeyIfnameIPv4, Comment: "local pod interface and address"},
		IPv6: {Name: setPodIfaceAddrsV6, Type: KeyIfnameIPv6, Comment: "local pod interface and address"},
	}
	addrs := map[Family]*Set{
		IPv4: {Name: setPodAddrsV4, Type: KeyIPv4, Comment: "local pod addresses with a known interface"},
		IPv6: {Name: setPodAddrsV6, Type: KeyIPv6, Comment: "local pod addresses with a known interface"},
	}
	seen := map[string]bool{}
	for _, p := range local {
		if !seen[p.iface] {
			seen[p.iface] = true
			ifaces.Elements = append(ifaces.Elements, Element{Ifname: p.iface})
		}
		f := FamilyOf(p.addr)
		pairs[f].Elements = append(pairs[f].Elements, Element{Ifname: p.iface, Addr: p.addr})
		addrs[f].Elements = append(addrs[f].Elements, Element{Addr: p.addr})
	}
	sets := []*Set{ifaces, pairs[IPv4], pairs[IPv6], addrs[IPv4], addrs[IPv6]}
	for _, s := range sets {
		SortElements(s.Elements)
	}
	return sets
}

func findAddressSet(m *selectors.Model, id string) (selectors.AddressSet, bool) {
	i, ok := slices.BinarySearchFunc(m.AddressSets, id, func(s selectors.AddressSet, id string) int { return strings.Compare(s.ID, id) })
	if !ok {
		return selectors.AddressSet{}, false
	}
	return m.AddressSets[i], true
}

func findServiceSet(m *selectors.Model, id string) (selectors.ServiceSet, bool) {
	i, ok := slices.BinarySearchFunc(m.ServiceSets, id, func(s selectors.ServiceSet, id string) int { return strings.Compare(s.ID, id) })
	if !ok {
		return selectors.ServiceSet{}, false
	}
	return m.ServiceSets[i], true
}
