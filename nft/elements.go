package nft

import (
	"cmp"
	"slices"
	"strings"
)

// SortElements sorts set elements into the canonical order used by rulesets and transactions.
func SortElements(elems []Element) {
	slices.SortFunc(elems, compareElements)
}

func compareElements(a, b Element) int {
	return cmp.Or(
		strings.Compare(a.Ifname, b.Ifname),
		a.Addr.Compare(b.Addr),
		a.AddrEnd.Compare(b.AddrEnd),
		cmp.Compare(a.Proto, b.Proto),
		cmp.Compare(a.Port, b.Port),
		cmp.Compare(a.PortEnd, b.PortEnd),
	)
}
