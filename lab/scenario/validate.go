package scenario

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// namespaceNameLabel is the label the API server puts on every namespace; relabels keep it.
const namespaceNameLabel = "kubernetes.io/metadata.name"

var kebabCase = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)

// validate checks what the decoder cannot: names, references, ports, protocols and that every
// deny pair is probed. All problems are reported together.
func (s *Scenario) validate() error {
	var errs []error
	switch {
	case s.Name == "":
		errs = append(errs, errors.New("name: required"))
	case !kebabCase.MatchString(s.Name):
		errs = append(errs, fmt.Errorf("name: %q is not kebab-case", s.Name))
	}
	if s.Description == "" {
		errs = append(errs, errors.New("description: required"))
	}
	errs = append(errs, s.Cluster.validate("cluster"))
	if len(s.Steps) == 0 {
		errs = append(errs, errors.New("steps: at least one step is required"))
	}
	for i := range s.Steps {
		errs = append(errs, s.Steps[i].validate(s.Cluster, fmt.Sprintf("steps[%d]", i)))
	}
	return errors.Join(errs...)
}

func (c *ClusterSpec) validate(path string) error {
	if len(c.Namespaces) == 0 {
		return fmt.Errorf("%s.namespaces: at least one namespace is required", path)
	}
	var errs []error
	seen := map[string]bool{}
	for i, ns := range c.Namespaces {
		nsPath := fmt.Sprintf("%s.namespaces[%d]", path, i)
		if msgs := validation.IsDNS1123Label(ns.Name); len(msgs) > 0 {
			errs = append(errs, fmt.Errorf("%s.name: %q: %v", nsPath, ns.Name, msgs))
		}
		if seen[ns.Name] {
			errs = append(errs, fmt.Errorf("%s.name: namespace %q is listed twice", nsPath, ns.Name))
		}
		seen[ns.Name] = true
		errs = append(errs, validateNamespaceLabels(ns.Name, ns.Labels, nsPath+".labels"))
		errs = append(errs, ns.validatePods(nsPath))
		errs = append(errs, ns.validateServices(nsPath))
	}
	return errors.Join(errs...)
}

func (ns *Namespace) validatePods(path string) error {
	var errs []error
	seen := map[string]bool{}
	for j, pod := range ns.Pods {
		podPath := fmt.Sprintf("%s.pods[%d]", path, j)
		if msgs := validation.IsDNS1123Subdomain(pod.Name); len(msgs) > 0 {
			errs = append(errs, fmt.Errorf("%s.name: %q: %v", podPath, pod.Name, msgs))
		}
		if seen[pod.Name] {
			errs = append(errs, fmt.Errorf("%s.name: pod %q is listed twice", podPath, pod.Name))
		}
		seen[pod.Name] = true
		errs = append(errs, validatePodLabels(pod.Labels, podPath+".labels"))
		errs = append(errs, validatePorts(pod.Ports, podPath+".ports"))
	}
	return errors.Join(errs...)
}

func validatePorts(ports []Port, path string) error {
	var errs []error
	names := map[string]bool{}
	served := map[Port]bool{}
	for k, p := range ports {
		portPath := fmt.Sprintf("%s[%d]", path, k)
		errs = append(errs, validatePortProtocol(p.Port, p.Protocol, portPath))
		if p.Name != "" {
			if msgs := validation.IsValidPortName(p.Name); len(msgs) > 0 {
				errs = append(errs, fmt.Errorf("%s.name: %q: %v", portPath, p.Name, msgs))
			}
			if names[p.Name] {
				errs = append(errs, fmt.Errorf("%s.name: port name %q is used twice", portPath, p.Name))
			}
			names[p.Name] = true
		}
		key := Port{Port: p.Port, Protocol: p.Protocol}
		if served[key] {
			errs = append(errs, fmt.Errorf("%s: %s/%d is listed twice", portPath, p.Protocol, p.Port))
		}
		served[key] = true
	}
	return errors.Join(errs...)
}

func validatePortProtocol(port int, protocol, path string) error {
	var errs []error
	if port < 1 || port > 65535 {
		errs = append(errs, fmt.Errorf("%s.port: %d is out of 1..65535", path, port))
	}
	switch protocol {
	case ProtocolTCP, ProtocolUDP, ProtocolSCTP:
	case "":
		errs = append(errs, fmt.Errorf("%s.protocol: required (TCP, UDP or SCTP)", path))
	default:
		errs = append(errs, fmt.Errorf("%s.protocol: %q is not TCP, UDP or SCTP", path, protocol))
	}
	return errors.Join(errs...)
}

func validateLabels(labels map[string]string, path string) error {
	if errs := metav1validation.ValidateLabels(labels, field.NewPath(path)); len(errs) > 0 {
		return errs.ToAggregate()
	}
	return nil
}

// validatePodLabels also refuses the label the lab keeps on every pod for its own Service.
func validatePodLabels(labels map[string]string, path string) error {
	if _, ok := labels[PodServiceLabel]; ok {
		return fmt.Errorf("%s: %s belongs to the lab, which keeps it on every pod for the pod's own Service", path, PodServiceLabel)
	}
	return validateLabels(labels, path)
}

// validateNamespaceLabels also refuses to give kubernetes.io/metadata.name a value other than the
// namespace's name, which the API server would overwrite.
func validateNamespaceLabels(name string, labels map[string]string, path string) error {
	if v, ok := labels[namespaceNameLabel]; ok && v != name {
		return fmt.Errorf("%s: %s is always %q", path, namespaceNameLabel, name)
	}
	return validateLabels(labels, path)
}

// clusterPolicyNamePattern is a cluster-scoped object's name (a DNS subdomain).
var clusterPolicyNamePattern = regexp.MustCompile(`^[a-z0-9]([-.a-z0-9]*[a-z0-9])?$`)

func (st *Step) validate(c *ClusterSpec, path string) error {
	var errs []error
	for i, ref := range st.Delete {
		refPath := fmt.Sprintf("%s.delete[%d]", path, i)
		if name, ok := strings.CutPrefix(ref, clusterNetworkPolicyKind+"/"); ok {
			if !clusterPolicyNamePattern.MatchString(name) {
				errs = append(errs, fmt.Errorf("%s: %q: want \"ClusterNetworkPolicy/name\"", refPath, ref))
			}
			continue
		}
		ns, _, err := splitRef(ref)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", refPath, err))
		} else if _, ok := c.Namespace(ns); !ok {
			errs = append(errs, fmt.Errorf("%s: namespace %q is not in the cluster", refPath, ns))
		}
	}
	if err := validateApply(st.Apply, c); err != nil {
		errs = append(errs, fmt.Errorf("%s.apply: %w", path, err))
	}
	for i, r := range st.Relabel {
		errs = append(errs, r.validate(c, fmt.Sprintf("%s.relabel[%d]", path, i)))
	}
	for i, e := range st.Expect {
		expectPath := fmt.Sprintf("%s.expect[%d]", path, i)
		if err := e.Via.validate(); err != nil {
			errs = append(errs, fmt.Errorf("%s.via: %w", expectPath, err))
		}
		if err := validatePortProtocol(e.Port, e.Protocol, expectPath); err != nil {
			errs = append(errs, err)
			continue
		}
		if _, err := ExpandExpect(c, e); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", expectPath, err))
		}
	}
	return errors.Join(errs...)
}

func (r *Relabel) validate(c *ClusterSpec, path string) error {
	switch r.Kind {
	case KindNamespace:
		if _, ok := c.Namespace(r.Name); !ok {
			return fmt.Errorf("%s.name: namespace %q is not in the cluster", path, r.Name)
		}
		return validateNamespaceLabels(r.Name, r.Labels, path+".labels")
	case KindPod:
		if _, _, err := splitRef(r.Name); err != nil {
			return fmt.Errorf("%s.name: %w", path, err)
		}
		if _, ok := c.Pod(r.Name); !ok {
			return fmt.Errorf("%s.name: pod %q is not in the cluster", path, r.Name)
		}
		return validatePodLabels(r.Labels, path+".labels")
	}
	return fmt.Errorf("%s.kind: %q is not Namespace or Pod", path, r.Kind)
}

// validateApply checks the placeholders of an apply against the cluster and that, with stand-in
// addresses, it reads as NetworkPolicies in the cluster's namespaces.
func validateApply(text string, c *ClusterSpec) error {
	rendered, err := expandPlaceholders(text, func(ph placeholder) (string, error) {
		if _, ok := c.Pod(ph.pod); !ok {
			return "", fmt.Errorf("pod %q is not in the cluster", ph.pod)
		}
		if ph.prefixLen > 128 {
			return "", fmt.Errorf("prefix length %d is longer than any address", ph.prefixLen)
		}
		return ph.standIn(), nil
	})
	if err != nil {
		return err
	}
	manifests, err := ParseManifests(rendered)
	if err != nil {
		return err
	}
	for _, p := range manifests.NetworkPolicies {
		if _, ok := c.Namespace(p.Namespace); !ok {
			return fmt.Errorf("NetworkPolicy %s/%s: namespace %q is not in the cluster", p.Namespace, p.Name, p.Namespace)
		}
	}
	return nil
}
