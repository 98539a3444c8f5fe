// Audit mode: a NetworkPolicy annotated ModeAnnotation=audit is resolved like any other, but its
// isolations and rules are handed out apart (LocalPod.AuditIngress, AuditEgress), so that the
// enforced verdict treats it as absent and the compiler can log what it would change.

package selectors

import (
	"fmt"

	networkingv1 "k8s.io/api/networking/v1"
)

// ModeAnnotation on a NetworkPolicy says whether it is enforced (ModeEnforce, the default) or only
// audited (ModeAudit).
const ModeAnnotation = "nftpolicy.io/mode"

const (
	ModeEnforce = "enforce"
	ModeAudit   = "audit"
)

// ModeField is the field a problem with the mode annotation names.
const ModeField = "metadata.annotations[" + ModeAnnotation + "]"

// audited reports whether a policy is audited rather than enforced. An unknown value enforces the
// policy (auditing would stop enforcing it: that could only widen access) and is returned as a
// problem.
func audited(np *networkingv1.NetworkPolicy) (audit bool, problem string) {
	value, ok := np.Annotations[ModeAnnotation]
	switch {
	case !ok || value == ModeEnforce:
		return false, ""
	case value == ModeAudit:
		return true, ""
	}
	return false, fmt.Sprintf("unknown mode %q (want %s or %s); the policy is enforced", value, ModeEnforce, ModeAudit)
}

// Audited reports whether a NetworkPolicy is audited (ModeAnnotation=audit) rather than enforced.
func Audited(np *networkingv1.NetworkPolicy) bool {
	a, _ := audited(np)
	return a
}
