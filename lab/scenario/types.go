package scenario

import (
	"fmt"
	"regexp"
	"strings"

	"k8s.io/apimachinery/pkg/util/intstr"
)

// Scenario is one scenario file. After Parse, Cluster is never nil: a file without a cluster key
// gets DefaultCluster.
type Scenario struct {
	Name        string       `yaml:"name"`
	Description string       `yaml:"description"`
	Upstream    string       `yaml:"upstream"`
	Tags        []string     `yaml:"tags"`
	Cluster     *ClusterSpec `yaml:"cluster"`
	Steps       []Step       `yaml:"steps"`
}

// ClusterSpec is the set of namespaces and pods a scenario runs against.
type ClusterSpec struct {
	Namespaces []Namespace `yaml:"namespaces"`
}

// Namespace is one namespace of the cluster. Labels are the file's labels only: the lab (like the
// API server) adds kubernetes.io/metadata.name.
type Namespace struct {
	Name     string            `yaml:"name"`
	Labels   map[string]string `yaml:"labels"`
	Pods     []Pod             `yaml:"pods"`
	Services []Service         `yaml:"services"`
}

// Pod is one pod of a namespace and what it serves.
type Pod struct {
	Name   string            `yaml:"name"`
	Labels map[string]string `yaml:"labels"`
	Ports  []Port            `yaml:"ports"`
}

// Port is one port a pod serves. Name is optional; when set, it is the container port's name.
type Port struct {
	Name     string `yaml:"name"`
	Port     int    `yaml:"port"`
	Protocol string `yaml:"protocol"`
}

// Service is a ClusterIP Service of a custom cluster, created before the first step. It is there for
// the demo and for people probing by hand: `via: service` probes each pod's own Service instead.
type Service struct {
	Name     string            `yaml:"name"`
	Selector map[string]string `yaml:"selector"`
	Ports    []ServicePort     `yaml:"ports"`
}

// ServicePort is one port of a Service. TargetPort is a number or the name of a container port;
// unset, it is Port.
type ServicePort struct {
	Name       string             `yaml:"name"`
	Port       int                `yaml:"port"`
	TargetPort intstr.IntOrString `yaml:"targetPort"`
	Protocol   string             `yaml:"protocol"`
}

// Step is one change of the cluster followed by the connectivity expected after it.
type Step struct {
	// Delete names NetworkPolicies as "namespace/name" and ClusterNetworkPolicies as
	// "ClusterNetworkPolicy/name".
	Delete  []string  `yaml:"delete"`
	Apply   string    `yaml:"apply"` // multi-document NetworkPolicy and ClusterNetworkPolicy manifests, with placeholders
	Relabel []Relabel `yaml:"relabel"`
	Expect  Expects   `yaml:"expect"`
}

// Relabel replaces the labels of one namespace or pod.
type Relabel struct {
	Kind   string            `yaml:"kind"` // KindNamespace or KindPod
	Name   string            `yaml:"name"` // "x" for a namespace, "x/a" for a pod
	Labels map[string]string `yaml:"labels"`
}

// The kinds a Relabel can name.
const (
	KindNamespace = "Namespace"
	KindPod       = "Pod"
)

// Expect is the connectivity matrix expected for one port and protocol: every pair of Deny is
// blocked and every other probed pair is allowed. Via says how each destination is reached: unset
// (ViaDefault) or ViaPod to its pod IP, ViaService through its own ClusterIP Service.
type Expect struct {
	Port     int      `yaml:"port"`
	Protocol string   `yaml:"protocol"`
	Deny     []string `yaml:"deny"` // "src -> dst", pods written "namespace/pod"
	Via      Via      `yaml:"via"`
}

// Via is how a probe reaches its destination.
type Via string

// The ways an expectation can reach its destinations. ViaDefault, an expect without a via key,
// means ViaPod, unless the runner is told to check it both ways (Options.AlsoViaService).
const (
	ViaDefault Via = ""
	ViaPod     Via = "pod"
	ViaService Via = "service"
)

// String names the expectation's port, e.g. "TCP/80".
func (e Expect) String() string { return fmt.Sprintf("%s/%d", e.Protocol, e.Port) }

// Expects is a step's expect key, written either as one mapping or as a list of them.
type Expects []Expect

// The protocols a port or an expectation can name.
const (
	ProtocolTCP  = "TCP"
	ProtocolUDP  = "UDP"
	ProtocolSCTP = "SCTP"
)

// Family is the IP family of one run of a scenario.
type Family string

// The IP families a scenario can run for.
const (
	IPv4 Family = "ipv4"
	IPv6 Family = "ipv6"
)

// ParseFamily reads "ipv4" or "ipv6".
func ParseFamily(s string) (Family, error) {
	switch f := Family(strings.ToLower(s)); f {
	case IPv4, IPv6:
		return f, nil
	}
	return "", fmt.Errorf("unknown IP family %q: want ipv4 or ipv6", s)
}

// bits is the address length of the family.
func (f Family) bits() int {
	if f == IPv6 {
		return 128
	}
	return 32
}

// Pair is one ordered probe from Src to Dst, both written "namespace/pod".
type Pair struct {
	Src, Dst string
}

// String writes the pair the way scenario files do: "x/b -> x/a".
func (p Pair) String() string { return p.Src + " -> " + p.Dst }

// ParsePair reads "src -> dst". It checks the syntax of both pod references, not that they exist.
func ParsePair(s string) (Pair, error) {
	src, dst, ok := strings.Cut(s, "->")
	if !ok {
		return Pair{}, fmt.Errorf("pair %q: want \"namespace/pod -> namespace/pod\"", s)
	}
	p := Pair{Src: strings.TrimSpace(src), Dst: strings.TrimSpace(dst)}
	for _, ref := range []string{p.Src, p.Dst} {
		if _, _, err := splitRef(ref); err != nil {
			return Pair{}, fmt.Errorf("pair %q: %w", s, err)
		}
	}
	return p, nil
}

// refPattern is a namespace (a DNS label) and an object name (a DNS subdomain).
var refPattern = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?/[a-z0-9]([-.a-z0-9]*[a-z0-9])?$`)

// splitRef splits "namespace/name".
func splitRef(ref string) (namespace, name string, err error) {
	if !refPattern.MatchString(ref) {
		return "", "", fmt.Errorf("reference %q: want \"namespace/name\"", ref)
	}
	namespace, name, _ = strings.Cut(ref, "/")
	return namespace, name, nil
}
