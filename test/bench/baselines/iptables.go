package baselines

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/nftpolicy/nftpolicy/selectors"
)

// Chain and set names of baseline C. ipset names are limited to 31 characters, iptables chain names
// to 28: dynamic names are a prefix and a short hash, like kube-router's.
const (
	chainForward = "KUBE-ROUTER-FORWARD"
	chainInput   = "KUBE-ROUTER-INPUT"
	podInPrefix  = "KUBE-POD-IN-"
	podEgPrefix  = "KUBE-POD-EG-"
	peerPrefix   = "KUBE-PEER-"
	svcPrefix    = "KUBE-SVC-"
	// kube-router swaps every set through a temporary set of the same type.
	tmpPrefix = "KUBE-TMP-"
	// ipsetMaxElem is the same for every set, so that `create -exist` of a set that exists with other
	// contents succeeds and any set can be swapped with the temporary one.
	ipsetMaxElem = 1 << 20
)

// IPTables is baseline C's state: the ipsets and the filter table.
type IPTables struct {
	Sets  []IPSet
	Rules int // rules of the filter table (-A lines)
	// filter is the iptables-restore input for the filter table.
	filter string
}

// IPSet is one ipset with its entries in ipset syntax ("10.0.0.1", "172.16.0.0/20",
// "10.0.0.1,tcp:8080").
type IPSet struct {
	Name    string
	Type    string // hash:ip, hash:net or hash:ip,port
	Entries []string
}

// Elements counts the entries of every set.
func (c *IPTables) Elements() int {
	n := 0
	for _, s := range c.Sets {
		n += len(s.Entries)
	}
	return n
}

// IPTablesLayout lowers a model into baseline C.
//
//	-A FORWARD -j KUBE-ROUTER-FORWARD
//	-A INPUT -j KUBE-ROUTER-INPUT
//	-A KUBE-ROUTER-FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
//	-A KUBE-ROUTER-FORWARD -s POD -j KUBE-POD-EG-HASH        (egress first, then ingress)
//	-A KUBE-ROUTER-FORWARD -d POD -j KUBE-POD-IN-HASH
//	-A KUBE-POD-IN-HASH -m set --match-set KUBE-PEER-HASH src -p tcp -m multiport --dports 80,9000:9099 -j RETURN
//	-A KUBE-POD-IN-HASH -j DROP
//
// An allowed packet RETURNs so that same-node traffic still meets the destination's ingress chain.
func IPTablesLayout(m *selectors.Model) (*IPTables, error) {
	c := &IPTables{}
	sets := map[string]*IPSet{}
	var chains, jumps, body []string
	add := func(lines *[]string, format string, args ...any) {
		*lines = append(*lines, fmt.Sprintf(format, args...))
		c.Rules++
	}
	add(&jumps, "-A FORWARD -j %s", chainForward)
	add(&jumps, "-A INPUT -j %s", chainInput)
	add(&jumps, "-A %s -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT", chainForward)
	add(&jumps, "-A %s -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT", chainInput)
	addrSets := map[string]selectors.AddressSet{}
	for _, s := range m.AddressSets {
		addrSets[s.ID] = s
	}
	svcSets := map[string]selectors.ServiceSet{}
	for _, s := range m.ServiceSets {
		svcSets[s.ID] = s
	}
	for _, pod := range m.LocalPods {
		for _, dir := range []struct {
			iso              *selectors.Isolation
			prefix, podMatch string
			peerDir          string
			egress           bool
		}{{pod.Egress, podEgPrefix, "-s", "dst", true}, {pod.Ingress, podInPrefix, "-d", "src", false}} {
			if dir.iso == nil {
				continue
			}
			chain := hashedName(dir.prefix, pod.Key(), 28)
			chains = append(chains, chain)
			for _, ip := range pod.IPs {
				if !ip.Is4() {
					return nil, fmt.Errorf("pod %s: baseline C handles IPv4 only, got %s", pod.Key(), ip)
				}
				add(&jumps, "-A %s %s %s/32 -j %s", chainForward, dir.podMatch, ip, chain)
				if dir.egress {
					add(&jumps, "-A %s -s %s/32 -j %s", chainInput, ip, chain)
				}
			}
			for _, r := range dir.iso.Rules {
				comment := fmt.Sprintf("-m comment --comment \"%s %s[%d]\"", r.Policy, map[bool]string{true: "egress", false: "ingress"}[dir.egress], r.Index)
				peer := ""
				if !r.AnyPeer {
					set, err := peerIPSet(sets, addrSets, r.Peers)
					if err != nil {
						return nil, err
					}
					peer = fmt.Sprintf(" -m set --match-set %s %s", set, dir.peerDir)
				}
				if r.AllPorts {
					add(&body, "-A %s %s%s -j RETURN", chain, comment, peer)
				}
				for _, pm := range portMatches(r.Ports) {
					add(&body, "-A %s %s%s %s -j RETURN", chain, comment, peer, pm)
				}
				for _, id := range r.NamedPorts {
					set, err := serviceIPSet(sets, svcSets, id)
					if err != nil {
						return nil, err
					}
					add(&body, "-A %s %s -m set --match-set %s dst,dst -j RETURN", chain, comment, set)
				}
			}
			add(&body, "-A %s -j DROP", chain)
		}
	}
	var b strings.Builder
	b.WriteString("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n")
	fmt.Fprintf(&b, ":%s - [0:0]\n:%s - [0:0]\n", chainForward, chainInput)
	for _, ch := range chains {
		fmt.Fprintf(&b, ":%s - [0:0]\n", ch)
	}
	for _, lines := range [][]string{jumps, body} {
		for _, l := range lines {
			b.WriteString(l)
			b.WriteByte('\n')
		}
	}
	b.WriteString("COMMIT\n")
	c.filter = b.String()
	for _, s := range sets {
		c.Sets = append(c.Sets, *s)
	}
	slices.SortFunc(c.Sets, func(a, b IPSet) int { return strings.Compare(a.Name, b.Name) })
	return c, nil
}

// portMatches renders a rule's ports, one iptables match per protocol: `-p tcp -m multiport --dports
// 80,9000:9099` (multiport takes at most 15 ports, a range counting two), or `-p tcp` for every port.
func portMatches(ports []selectors.PortRange) []string {
	byProto := map[uint8][]string{}
	all := map[uint8]bool{}
	var order []uint8
	for _, p := range ports {
		proto := protoOf(p.Protocol)
		if _, seen := byProto[proto]; !seen && !all[proto] {
			order = append(order, proto)
		}
		switch {
		case p.AllOfProtocol():
			all[proto] = true
		case p.First == p.Last:
			byProto[proto] = append(byProto[proto], fmt.Sprint(p.First))
		default:
			byProto[proto] = append(byProto[proto], fmt.Sprintf("%d:%d", p.First, p.Last))
		}
		if _, ok := byProto[proto]; !ok {
			byProto[proto] = nil
		}
	}
	var out []string
	for _, proto := range order {
		if all[proto] {
			out = append(out, "-p "+protoName(proto))
			continue
		}
		items := byProto[proto]
		for len(items) > 0 {
			n := min(len(items), 7) // 7 ranges use 14 of multiport's 15 slots
			out = append(out, fmt.Sprintf("-p %s -m multiport --dports %s", protoName(proto), strings.Join(items[:n], ",")))
			items = items[n:]
		}
	}
	return out
}

// peerIPSet returns the ipset of an address set, creating it: hash:ip when every member is one
// address (pod selectors), else hash:net with every range cut into CIDRs (ipBlocks, their excepts
// already subtracted by the resolver).
func peerIPSet(sets map[string]*IPSet, addrSets map[string]selectors.AddressSet, id string) (string, error) {
	name := hashedName(peerPrefix, id, 31)
	if _, ok := sets[name]; ok {
		return name, nil
	}
	as, ok := addrSets[id]
	if !ok {
		return "", fmt.Errorf("unknown address set %s", id)
	}
	set := &IPSet{Name: name, Type: "hash:ip"}
	for _, r := range as.Ranges {
		if !r.From.Is4() {
			return "", fmt.Errorf("address set %s: baseline C handles IPv4 only", id)
		}
		if r.From != r.To {
			set.Type = "hash:net"
		}
	}
	for _, r := range as.Ranges {
		if set.Type == "hash:ip" {
			set.Entries = append(set.Entries, r.From.String())
			continue
		}
		for _, p := range rangePrefixes(r.From, r.To) {
			set.Entries = append(set.Entries, p.String())
		}
	}
	sets[name] = set
	return name, nil
}

func serviceIPSet(sets map[string]*IPSet, svcSets map[string]selectors.ServiceSet, id string) (string, error) {
	name := hashedName(svcPrefix, id, 31)
	if _, ok := sets[name]; ok {
		return name, nil
	}
	ss, ok := svcSets[id]
	if !ok {
		return "", fmt.Errorf("unknown service set %s", id)
	}
	set := &IPSet{Name: name, Type: "hash:ip,port"}
	for _, s := range ss.Services {
		if !s.Addr.Is4() {
			return "", fmt.Errorf("service set %s: baseline C handles IPv4 only", id)
		}
		set.Entries = append(set.Entries, fmt.Sprintf("%s,%s:%d", s.Addr, protoName(protoOf(s.Protocol)), s.Port))
	}
	sets[name] = set
	return name, nil
}

// rangePrefixes cuts an inclusive IPv4 range into the fewest CIDRs.
func rangePrefixes(from, to netip.Addr) []netip.Prefix {
	lo, hi := uint64(addrUint(from)), uint64(addrUint(to))
	var out []netip.Prefix
	for lo <= hi {
		bits := 32
		for bits > 0 {
			size := uint64(1) << (32 - (bits - 1))
			if lo%size != 0 || lo+size-1 > hi {
				break
			}
			bits--
		}
		b := uint32(lo)
		out = append(out, netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(b >> 24), byte(b >> 16), byte(b >> 8), byte(b)}), bits))
		lo += uint64(1) << (32 - bits)
	}
	return out
}

func addrUint(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// hashedName is prefix plus a hash of key, at most limit characters.
func hashedName(prefix, key string, limit int) string {
	sum := sha256.Sum256([]byte(key))
	return prefix + strings.ToUpper(hex.EncodeToString(sum[:]))[:limit-len(prefix)]
}

// FilterRestore is the iptables-restore input of a full sync.
func (c *IPTables) FilterRestore() string { return c.filter }

// IPSetRestore is the `ipset restore` input of a full sync, as kube-router writes it: every set is
// filled under a temporary name of its type and swapped in; sets in stale (present in the kernel,
// no longer wanted) are destroyed. Destroying a set still referenced by a rule fails, so stale sets
// are destroyed by DestroyRestore after iptables-restore.
func (c *IPTables) IPSetRestore() string {
	var b strings.Builder
	tmps := map[string]string{}
	for _, s := range c.Sets {
		tmp, ok := tmps[s.Type]
		if !ok {
			tmp = hashedName(tmpPrefix, s.Type, 31)
			tmps[s.Type] = tmp
		}
		fmt.Fprintf(&b, "create %s %s family inet hashsize 1024 maxelem %d -exist\n", tmp, s.Type, ipsetMaxElem)
		fmt.Fprintf(&b, "flush %s\n", tmp)
		for _, e := range s.Entries {
			fmt.Fprintf(&b, "add %s %s\n", tmp, e)
		}
		fmt.Fprintf(&b, "create %s %s family inet hashsize 1024 maxelem %d -exist\n", s.Name, s.Type, ipsetMaxElem)
		fmt.Fprintf(&b, "swap %s %s\n", tmp, s.Name)
		fmt.Fprintf(&b, "flush %s\n", tmp)
	}
	types := make([]string, 0, len(tmps))
	for _, tmp := range tmps {
		types = append(types, tmp)
	}
	slices.Sort(types)
	for _, tmp := range types {
		fmt.Fprintf(&b, "destroy %s\n", tmp)
	}
	return b.String()
}

// DestroyRestore is the `ipset restore` input that removes the sets of previous that c no longer has.
func (c *IPTables) DestroyRestore(previous *IPTables) string {
	if previous == nil {
		return ""
	}
	keep := map[string]bool{}
	for _, s := range c.Sets {
		keep[s.Name] = true
	}
	var b strings.Builder
	for _, s := range previous.Sets {
		if !keep[s.Name] {
			fmt.Fprintf(&b, "destroy %s\n", s.Name)
		}
	}
	return b.String()
}
