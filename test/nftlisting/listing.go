// Package nftlisting compares `nft list table` output, the kernel's or nft.Render's, for tests: the
// kernel lists hashed elements in its own iteration order, wraps long element lists, and lists sets,
// maps and chains in creation order, none of which a renderer can predict.
package nftlisting

import (
	"regexp"
	"slices"
	"strings"

	"github.com/nftpolicy/nftpolicy/nft"
)

// NormalizeElements undoes nft's wrapping of element lists (one list per line), sorts the items of
// every `elements = { ... }` list, and drops the values of counter objects (`packets N bytes N`),
// which are the kernel's and which Render leaves out as `nft -s` does.
func NormalizeElements(listing string) string {
	listing = strings.ReplaceAll(listing, ",\n\t\t\t     ", ", ")
	listing = counterValues.ReplaceAllString(listing, "")
	const open, closing = "elements = { ", " }"
	lines := strings.Split(listing, "\n")
	for i, l := range lines {
		start := strings.Index(l, open)
		if start < 0 || !strings.HasSuffix(l, closing) {
			continue
		}
		items := strings.Split(l[start+len(open):len(l)-len(closing)], ", ")
		slices.Sort(items)
		lines[i] = l[:start+len(open)] + strings.Join(items, ", ") + closing
	}
	return strings.Join(lines, "\n")
}

// counterValues is the line nft lists a counter object's values on.
var counterValues = regexp.MustCompile(`(?m)^\t\tpackets \d+ bytes \d+\n`)

// Blocks splits a normalized listing of table into its sets, maps and chains, sorted, so that two
// tables with the same content compare equal whatever order their objects were created in.
func Blocks(listing, table string) []string {
	var out []string
	for _, b := range strings.Split(listing, "\n\n") {
		b = strings.TrimPrefix(b, "table inet "+table+" {\n")
		b = strings.TrimSuffix(strings.TrimSuffix(b, "}\n"), "\n")
		out = append(out, b)
	}
	slices.Sort(out)
	return out
}

// AddressElement returns a named address set of rs that holds an element, and that element as nft
// writes it (an address or a range), for tests that delete it as another writer would.
func AddressElement(rs *nft.Ruleset) (set, element string, ok bool) {
	for _, s := range rs.Sets {
		if len(s.Elements) > 0 && (s.Type == nft.KeyIPv4 || s.Type == nft.KeyIPv6) {
			e := s.Elements[0]
			element = e.Addr.String()
			if s.Interval && e.AddrEnd.IsValid() && e.AddrEnd != e.Addr {
				element += "-" + e.AddrEnd.String()
			}
			return s.Name, element, true
		}
	}
	return "", "", false
}
