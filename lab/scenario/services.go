package scenario

import (
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
)

// PodServiceLabel is the label the lab puts on every pod, and keeps there across relabels, so that
// the pod's own Service (PodServiceName) selects it and nothing else. Files may not set it.
const PodServiceLabel = "lab.nftpolicy.io/pod"

// podServicePrefix starts the name of every pod's own Service.
const podServicePrefix = "svc-"

// PodServiceName is the name of the ClusterIP Service of pod ("name", without its namespace) that
// `via: service` probes: "svc-" and the pod's name, with dots (which a Service name cannot hold) made
// dashes, and cut to a DNS label with a short hash of the whole name when it is longer.
func PodServiceName(pod string) string {
	return truncateWithHash(podServicePrefix+strings.ReplaceAll(pod, ".", "-"), pod, validation.DNS1035LabelMaxLength)
}

// PodServiceLabelValue is the value of PodServiceLabel on pod: its name, cut with a short hash when
// it is longer than a label value may be.
func PodServiceLabelValue(pod string) string {
	return truncateWithHash(pod, pod, validation.LabelValueMaxLength)
}

// truncateWithHash keeps s when it fits in max, and otherwise cuts it and appends a hash of whole,
// so that two long names sharing a prefix stay apart, as kube-proxy names its chains.
func truncateWithHash(s, whole string, max int) string {
	if len(s) <= max {
		return s
	}
	sum := sha256.Sum256([]byte(whole))
	hash := strings.ToLower(base32.StdEncoding.EncodeToString(sum[:]))[:8]
	head := strings.TrimRight(s[:max-len(hash)-1], "-.")
	return head + "-" + hash
}

// Selects reports whether the Service selects pod by the labels the file gives it.
func (s *Service) Selects(pod *Pod) bool {
	return len(s.Selector) > 0 && labels.SelectorFromSet(s.Selector).Matches(labels.Set(pod.Labels))
}

// String writes the port the way errors name it, e.g. "TCP/6379".
func (p ServicePort) String() string { return fmt.Sprintf("%s/%d", p.Protocol, p.Port) }
