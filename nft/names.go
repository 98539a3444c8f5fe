// Dynamic names: a readable prefix and what the object is made of, truncated with a short hash
// when too long.

package nft

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/nftpolicy/nftpolicy/selectors"
)

// setName names the family's half of a peer set (prefix peerSetPrefix) or a service set
// (serviceSetPrefix) after its ID, itself a short hash of the set's definition.
func setName(prefix, id string, f Family) string {
	return prefix + id + familySuffix(f)
}

// portSetName names the port set of ranges after them, and returns them as nft writes them.
func portSetName(ranges []PortRange) (name, text string) {
	text = renderPorts(ranges)
	sum := sha256.Sum256([]byte(portSetPrefix + text))
	return portSetPrefix + hex.EncodeToString(sum[:6]), text
}

// podChainName names one direction's chain of a local pod.
func podChainName(pod selectors.LocalPod, dir selectors.Direction) string {
	prefix := podIngressChainPrefix
	if dir == selectors.Egress {
		prefix = podEgressChainPrefix
	}
	return truncatedName(prefix+pod.Namespace+"_"+pod.Name, pod.Key())
}

// policyChainName names a variant's chain: after its policy and direction, and for variants other
// than the first one found also after its rules. Kubernetes names have no "_", so names of
// different policies cannot meet.
func policyChainName(v *policyVariant) string {
	prefix := policyIngressChainPrefix
	if v.key.dir == selectors.Egress {
		prefix = policyEgressChainPrefix
	}
	ref := v.key.policy
	if v.first && !v.logged && !v.audit {
		return truncatedName(prefix+ref.Namespace+"_"+ref.Name, ref.String())
	}
	sum := sha256.Sum256([]byte(fmt.Sprintf("%+v", v.rules)))
	variant := hex.EncodeToString(sum[:4])
	switch {
	case v.logged:
		// The logging variant of rules is named apart from the variant that does not log.
		variant += "_log"
	case v.audit:
		variant += "_audit"
	}
	return truncatedName(prefix+ref.Namespace+"_"+ref.Name+"_"+variant, ref.String()+"#"+variant)
}

// truncatedName returns name when it is short enough, else a truncated name made unique by a hash of key.
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
