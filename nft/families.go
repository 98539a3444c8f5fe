// IP families: which a chain is compiled for, and the suffix of a set's family half.

package nft

import "github.com/nftpolicy/nftpolicy/selectors"

// The family lists a chain can be compiled for. familySet.list returns one of them, so that
// compiling a chain allocates no list; callers must not modify it.
var (
	familiesIPv4 = []Family{IPv4}
	familiesIPv6 = []Family{IPv6}
	familiesDual = []Family{IPv4, IPv6}
)

// familySet is a set of families.
type familySet uint8

const (
	hasIPv4 familySet = 1 << iota
	hasIPv6
)

// familySetOf is the families of a pod's addresses.
func familySetOf(pod selectors.LocalPod) familySet {
	var fs familySet
	for _, a := range pod.IPs {
		switch FamilyOf(a) {
		case IPv4:
			fs |= hasIPv4
		case IPv6:
			fs |= hasIPv6
		}
	}
	return fs
}

// list returns the families, IPv4 first, as one of the shared lists above (nil for none).
func (fs familySet) list() []Family {
	switch fs {
	case hasIPv4 | hasIPv6:
		return familiesDual
	case hasIPv4:
		return familiesIPv4
	case hasIPv6:
		return familiesIPv6
	}
	return nil
}
func familySuffix(f Family) string {
	if f == IPv6 {
		return "_v6"
	}
	return "_v4"
}
