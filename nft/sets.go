// Sets: peer sets, service sets, port sets and the anti-spoofing sets of local pods.

package nft

import (
	"net/netip"
	"slices"
	"strings"

	"github.com/nftpolicy/nftpolicy/selectors"
)

// ifaceAddr is a local pod address with its host interface.
type ifaceAddr struct {
	addr  netip.Addr
	iface string
}

// antiSpoofMemo is what addAntiSpoofSets built last time, from which addresses and interfaces.
type antiSpoofMemo struct {
	pairs []ifaceAddr // in the order of the model's local pods
	sets  []*Set
}

// addAntiSpoofSets declares the sets of local pod interfaces and addresses, reusing the previous
// ones when the model's local pods have the same addresses on the same interfaces.
func (c *compiler) addAntiSpoofSets() {
	pairs := c.memo.antiSpoofScratch[:0]
	for _, pod := range c.in.Model.LocalPods {
		for _, ip := range pod.IPs {
			if iface, ok := c.in.Interfaces[ip]; ok {
				pairs = append(pairs, ifaceAddr{addr: ip, iface: iface})
			}
		}
	}
	if prev := c.memo.antiSpoof; prev.sets != nil && slices.Equal(prev.pairs, pairs) {
		for _, s := range prev.sets {
			c.sets[s.Name] = s
		}
		c.next.antiSpoof, c.next.antiSpoofScratch = prev, pairs
		return
	}
	sets := c.buildAntiSpoofSets(pairs)
	for _, s := range sets {
		c.sets[s.Name] = s
	}
	// The pairs become the memo; the previous memo's array is the scratch of the next call.
	c.next.antiSpoof, c.next.antiSpoofScratch = antiSpoofMemo{pairs: pairs, sets: sets}, c.memo.antiSpoof.pairs
}

func (c *compiler) buildAntiSpoofSets(local []ifaceAddr) []*Set {
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

// peerSet returns the name of the family's half of an AddressSet, creating it on first use.
func (c *compiler) peerSet(id string, f Family) string {
	name := c.name(nameKey{kind: peerSetPrefix, a: id, f: f}, func() string { return peerSetPrefix + id + familySuffix(f) })
	if _, ok := c.sets[name]; ok {
		return name
	}
	as, _ := findAddressSet(c.in.Model, id)
	if m, ok := c.memo.peers[name]; ok && sameSlice(m.ranges, as.Ranges) && m.hasIPBlocks == as.HasIPBlocks && m.description == as.Description {
		c.sets[name] = m.set
		c.next.peers[name] = m
		return name
	}
	// Peers chosen only by selectors are pod addresses: a hash set, one element per address and an
	// O(1) lookup. Only a definition with an ipBlock needs an interval set, for its ranges.
	prev := c.memo.peers[name]
	set := &Set{Name: name, Type: addrKey(f), Interval: as.HasIPBlocks, Comment: truncateComment(as.Description), Elements: spareElements(prev.spare)}
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
	if len(set.Elements) == 0 {
		set.Elements = nil // as Compile has it
	}
	if !set.Interval {
		set.Size = setSize(len(set.Elements), prev.set)
	}
	c.sets[name] = set
	c.next.peers[name] = peerMemo{ranges: as.Ranges, hasIPBlocks: as.HasIPBlocks, description: as.Description, set: set, spare: elementsOf(prev.set)}
	return name
}

// portSet returns the name of the port set holding ranges (sorted, disjoint), creating it on first
// use. Rules with the same ports share one set, named after the ports, whatever their policy or
// family. Several ports could be an anonymous set in each rule, as nft writes `tcp dport { 80, 443 }`,
// but the kernel pays for every set of a table on each set it looks up by name, and more for an
// anonymous set (it walks the whole transaction to bind one): anonymous port sets were a sixth of a
// full replacement's time at 50k cluster pods (306 of them, 97 distinct).
//
// Two lists of ports whose names collide (48 bits of a hash) cannot share a set: the second one is
// not given a set (ok false) and its rule keeps an anonymous set.
func (c *compiler) portSet(ranges []PortRange) (name string, ok bool) {
	name, text := portSetName(ranges)
	set, ok := c.next.ports[name]
	if !ok {
		set, ok = c.memo.ports[name]
	}
	if !ok {
		set = &Set{Name: name, Type: KeyPort, Interval: true, Comment: truncateComment("ports " + strings.Trim(text, "{ }"))}
		for _, r := range ranges {
			set.Elements = append(set.Elements, Element{Port: r.First, PortEnd: r.Last})
		}
	}
	if !portsEqual(set.Elements, ranges) {
		return "", false
	}
	c.sets[name] = set
	c.next.ports[name] = set
	return name, true
}

// portsEqual reports whether a port set's elements are ranges.
func portsEqual(elems []Element, ranges []PortRange) bool {
	return slices.EqualFunc(elems, ranges, func(e Element, r PortRange) bool { return e.Port == r.First && e.PortEnd == r.Last })
}

// declarePortSet declares a port set that a reused chain refers to.
func (c *compiler) declarePortSet(name string) {
	if _, ok := c.next.ports[name]; ok {
		return
	}
	set, ok := c.memo.ports[name]
	if !ok {
		panic("nft: a reused chain refers to unknown port set " + name)
	}
	c.sets[name] = set
	c.next.ports[name] = set
}

// serviceSet returns the name of the family's half of a ServiceSet, creating it on first use.
func (c *compiler) serviceSet(id string, f Family) string {
	name := c.name(nameKey{kind: serviceSetPrefix, a: id, f: f}, func() string { return serviceSetPrefix + id + familySuffix(f) })
	if _, ok := c.sets[name]; ok {
		return name
	}
	ss, found := findServiceSet(c.in.Model, id)
	if m, ok := c.memo.services[name]; ok && found && sameSlice(m.services, ss.Services) && m.description == ss.Description {
		c.sets[name] = m.set
		c.next.services[name] = m
		return name
	}
	keyType := KeyIPv4ProtoPort
	if f == IPv6 {
		keyType = KeyIPv6ProtoPort
	}
	prev := c.memo.services[name]
	set := &Set{Name: name, Type: keyType, Elements: spareElements(prev.spare)}
	if found {
		set.Comment = truncateComment(ss.Description)
		for _, s := range ss.Services {
			if FamilyOf(s.Addr) == f {
				set.Elements = append(set.Elements, Element{Addr: s.Addr, Proto: protoNumber(s.Protocol), Port: s.Port})
			}
		}
	}
	SortElements(set.Elements)
	if len(set.Elements) == 0 {
		set.Elements = nil // as Compile has it
	}
	set.Size = setSize(len(set.Elements), prev.set)
	if found {
		c.next.services[name] = serviceMemo{services: ss.Services, description: ss.Description, set: set, spare: elementsOf(prev.set)}
	}
	c.sets[name] = set
	return name
}

// spareElements returns the array of spare to lower a set's elements into (nil: a new one).
func spareElements(spare []Element) []Element {
	if cap(spare) == 0 {
		return nil
	}
	return spare[:0]
}

func elementsOf(s *Set) []Element {
	if s == nil {
		return nil
	}
	return s.Elements
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
