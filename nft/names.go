// Dynamic names: a readable prefix and what the object is made of, truncated with a short hash
// when too long.

package nft

import (
	"crypto/sha256"
	"encoding/hex"
)

// portSetName names the port set of ranges after them, and returns them as nft writes them.
func portSetName(ranges []PortRange) (name, text string) {
	text = renderPorts(ranges)
	sum := sha256.Sum256([]byte(portSetPrefix + text))
	return portSetPrefix + hex.EncodeToString(sum[:6]), text
}

// familySuffix ends the name of a family's half of a peer or service set.
func familySuffix(f Family) string {
	if f == IPv6 {
		return "_v6"
	}
	return "_v4"
}

// truncatedName returns name when it is short enough, else a truncated name made unique by a hash of key.
// nameKey identifies a chain or set name by what it is made of, so that names already made are found
// without building the string again.
type nameKey struct {
	kind string // the name's prefix
	a, b string
	f    Family
}

// name returns the name for key: the one the previous call made, or build's. Names used by this call
// are kept for the next one.
func (c *compiler) name(key nameKey, build func() string) string {
	name, ok := c.next.names[key]
	if !ok {
		if name, ok = c.memo.names[key]; !ok {
			name = build()
		}
		c.next.names[key] = name
	}
	return name
}

func truncatedName(name, key string) string {
	if len(name) <= maxNameLen {
		return name
	}
	sum := sha256.Sum256([]byte(key))
	hash := hex.EncodeToString(sum[:])[:8]
	return name[:maxNameLen-len(hash)-1] + "_" + hash
}

// truncateComment keeps comments within maxCommentLen.
func truncateComment(s string) string {
	if len(s) <= maxCommentLen {
		return s
	}
	return s[:maxCommentLen-3] + "..."
}
