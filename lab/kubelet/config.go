package kubelet

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
)

// NetnsAnnotation marks the pods that the lab runs itself; a kubelet configured with it as
// SkipAnnotation leaves them alone.
const NetnsAnnotation = "lab.nftpolicy.io/netns"

// MaxGracePeriod caps a pod's termination grace period: the lab does not wait 30 s for a process
// that ignores SIGTERM.
const MaxGracePeriod = 3 * time.Second

// Sandboxes creates the network side of a pod: its network namespace and addresses. A hostNetwork
// pod's sandbox is the node's own namespace, and its Remove leaves that namespace alone.
type Sandboxes interface {
	Create(ctx context.Context, pod *corev1.Pod) (Sandbox, error)
}

// Sandbox is one pod's network namespace.
type Sandbox interface {
	// NetnsPath is the namespace's file, e.g. /run/netns/<name>.
	NetnsPath() string
	// IPs are the pod's addresses, primary family first: the pod's status.podIPs.
	IPs() []netip.Addr
	// Remove deletes the namespace and its addresses.
	Remove() error
}

// Config is what one node's kubelet needs.
type Config struct {
	// NodeName is the node whose pods this kubelet runs.
	NodeName string
	// Client writes pod status and deletes terminated pods.
	Client kubernetes.Interface
	// Sandboxes creates each pod's network namespace.
	Sandboxes Sandboxes
	// Images maps an image repository (tag and digest ignored; "busybox" stands for
	// "docker.io/library/busybox") to the local programs that play it.
	Images map[string]Image
	// HostIPs are the node's addresses, written as each pod's status.hostIPs.
	HostIPs []netip.Addr
	// Listen is the kubelet API's address; "127.0.0.1:0" (a free port) when empty.
	Listen string
	// PKI holds the serving certificate and the CA that signs the API server's client certificate.
	PKI *PKI
	// LogDir receives one directory per pod with its containers' output.
	LogDir string
	// SkipAnnotation: pods carrying this annotation are left alone (NetnsAnnotation in the lab); when
	// its value is a path, port-forward to such a pod connects inside that network namespace.
	SkipAnnotation string
	// Logf reports what the kubelet does; nil discards.
	Logf func(format string, args ...any)
}

func (c *Config) validate() error {
	var errs []error
	if c.NodeName == "" {
		errs = append(errs, errors.New("no node name"))
	}
	if c.Client == nil {
		errs = append(errs, errors.New("no client"))
	}
	if c.Sandboxes == nil {
		errs = append(errs, errors.New("no sandboxes"))
	}
	if c.PKI == nil {
		errs = append(errs, errors.New("no PKI"))
	}
	if c.LogDir == "" {
		errs = append(errs, errors.New("no log directory"))
	}
	if _, err := exec.LookPath("nsenter"); err != nil {
		errs = append(errs, fmt.Errorf("running processes in pod namespaces needs nsenter (util-linux): %w", err))
	}
	return errors.Join(errs...)
}
