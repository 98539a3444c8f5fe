package e2e

import (
	"errors"
	"fmt"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// oracleValidatePolicy refuses what the API server's NetworkPolicy validation refuses, as far as
// scenario files can get it wrong, so that a file passing the oracle is also accepted by the lab's
// real API server. It is our reading of the networking/v1 field documentation, not a copy of the
// server's code.
func oracleValidatePolicy(np *networkingv1.NetworkPolicy) error {
	spec := field.NewPath("spec")
	var errs []error
	errs = append(errs, oracleValidateSelector(&np.Spec.PodSelector, spec.Child("podSelector")))
	for i, rule := range np.Spec.Ingress {
		path := spec.Child("ingress").Index(i)
		errs = append(errs, oracleValidatePorts(rule.Ports, path.Child("ports")))
		errs = append(errs, oracleValidatePeers(rule.From, path.Child("from")))
	}
	for i, rule := range np.Spec.Egress {
		path := spec.Child("egress").Index(i)
		errs = append(errs, oracleValidatePorts(rule.Ports, path.Child("ports")))
		errs = append(errs, oracleValidatePeers(rule.To, path.Child("to")))
	}
	// "Valid options are [\"Ingress\"], [\"Egress\"], or [\"Ingress\", \"Egress\"]."
	if len(np.Spec.PolicyTypes) > 2 {
		errs = append(errs, fmt.Errorf("%s: at most two policy types", spec.Child("policyTypes")))
	}
	for i, t := range np.Spec.PolicyTypes {
		if t != networkingv1.PolicyTypeIngress && t != networkingv1.PolicyTypeEgress {
			errs = append(errs, fmt.Errorf("%s: %q is neither Ingress nor Egress", spec.Child("policyTypes").Index(i), t))
		}
	}
	return errors.Join(errs...)
}

func oracleValidateSelector(ls *metav1.LabelSelector, path *field.Path) error {
	if ls == nil {
		return nil
	}
	if errs := metav1validation.ValidateLabelSelector(ls, metav1validation.LabelSelectorValidationOptions{}, path); len(errs) > 0 {
		return errs.ToAggregate()
	}
	return nil
}

func oracleValidatePorts(ports []networkingv1.NetworkPolicyPort, path *field.Path) error {
	var errs []error
	for i, p := range ports {
		pp := path.Index(i)
		if p.Protocol != nil {
			switch *p.Protocol {
			case corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP:
			default:
				errs = append(errs, fmt.Errorf("%s: %q is not TCP, UDP or SCTP", pp.Child("protocol"), *p.Protocol))
			}
		}
		if p.Port == nil {
			if p.EndPort != nil {
				errs = append(errs, fmt.Errorf("%s: endPort needs port", pp))
			}
			continue
		}
		if p.Port.Type == intstr.String {
			if msgs := validation.IsValidPortName(p.Port.StrVal); len(msgs) > 0 {
				errs = append(errs, fmt.Errorf("%s: %v", pp.Child("port"), msgs))
			}
			// "endPort ... cannot be set if the port field is not defined or if the port field is
			// defined as a named (string) port."
			if p.EndPort != nil {
				errs = append(errs, fmt.Errorf("%s: endPort cannot go with a named port", pp))
			}
			continue
		}
		if p.Port.IntVal < 1 || p.Port.IntVal > 65535 {
			errs = append(errs, fmt.Errorf("%s: %d is out of 1..65535", pp.Child("port"), p.Port.IntVal))
		}
		// "The endPort must be equal or greater than port."
		if p.EndPort != nil && (*p.EndPort < p.Port.IntVal || *p.EndPort > 65535) {
			errs = append(errs, fmt.Errorf("%s: %d must be in %d..65535", pp.Child("endPort"), *p.EndPort, p.Port.IntVal))
		}
	}
	return errors.Join(errs...)
}

func oracleValidatePeers(peers []networkingv1.NetworkPolicyPeer, path *field.Path) error {
	var errs []error
	for i, peer := range peers {
		pp := path.Index(i)
		errs = append(errs, oracleValidateSelector(peer.PodSelector, pp.Child("podSelector")))
		errs = append(errs, oracleValidateSelector(peer.NamespaceSelector, pp.Child("namespaceSelector")))
		switch {
		case peer.IPBlock == nil && peer.PodSelector == nil && peer.NamespaceSelector == nil:
			errs = append(errs, fmt.Errorf("%s: a peer needs a podSelector, a namespaceSelector or an ipBlock", pp))
		case peer.IPBlock != nil && (peer.PodSelector != nil || peer.NamespaceSelector != nil):
			// ipBlock: "If this field is set then neither of the other fields can be."
			errs = append(errs, fmt.Errorf("%s: ipBlock cannot go with a selector", pp))
		case peer.IPBlock != nil:
			errs = append(errs, oracleValidateIPBlock(peer.IPBlock, pp.Child("ipBlock")))
		}
	}
	return errors.Join(errs...)
}

// oracleValidateIPBlock: "Except is a slice of CIDRs that should not be included within an IPBlock
// ... Except values will be rejected if they are outside the cidr range".
func oracleValidateIPBlock(b *networkingv1.IPBlock, path *field.Path) error {
	cidr, err := netip.ParsePrefix(b.CIDR)
	if err != nil {
		return fmt.Errorf("%s: %w", path.Child("cidr"), err)
	}
	var errs []error
	for i, e := range b.Except {
		except, err := netip.ParsePrefix(e)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: %w", path.Child("except").Index(i), err))
		case except.Addr().Is4() != cidr.Addr().Is4() || except.Bits() <= cidr.Bits() || !cidr.Contains(except.Addr()):
			errs = append(errs, fmt.Errorf("%s: %s is not a strict subset of %s", path.Child("except").Index(i), e, b.CIDR))
		}
	}
	return errors.Join(errs...)
}
