package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport"
	"k8s.io/client-go/transport/spdy"
	"k8s.io/streaming/pkg/httpstream"
)

// The agent pods' labels and the name of their HTTPS port, as config/manager's DaemonSet sets them.
var agentSelector = labels.SelectorFromSet(labels.Set{"app.kubernetes.io/name": "nftpolicy", "app.kubernetes.io/component": "agent"})

const agentPortName = "https-metrics"

// agents reaches the agent of a node: through the API server's port-forward to the agent's pod (the
// caller needs `create pods/portforward` in the agent's namespace), then HTTPS to the agent's
// secure port with the caller's own credentials, which the agent authenticates (TokenReview or the
// cluster's client CA) and authorizes (SubjectAccessReview of `get` on the path).
type agents struct {
	cfg       *rest.Config
	client    kubernetes.Interface
	namespace string
}

// agentPod finds the running agent pod of a node and its HTTPS port.
func (a *agents) agentPod(ctx context.Context, node string) (*corev1.Pod, int, error) {
	list, err := a.client.CoreV1().Pods(a.namespace).List(ctx, metav1.ListOptions{
		LabelSelector: agentSelector.String(),
		FieldSelector: fields.OneTermEqualSelector("spec.nodeName", node).String(),
	})
	if err != nil {
		return nil, 0, fmt.Errorf("finding the agent of node %s in namespace %s: %w", node, a.namespace, err)
	}
	for i := range list.Items {
		pod := &list.Items[i]
		if pod.Status.Phase != corev1.PodRunning || pod.DeletionTimestamp != nil {
			continue
		}
		for _, c := range pod.Spec.Containers {
			for _, p := range c.Ports {
				if p.Name == agentPortName {
					return pod, int(p.ContainerPort), nil
				}
			}
		}
		return nil, 0, fmt.Errorf("the agent pod %s/%s has no port named %q", pod.Namespace, pod.Name, agentPortName)
	}
	return nil, 0, fmt.Errorf("no running agent on node %s (pods %s in namespace %s; see --agent-namespace)", node, agentSelector, a.namespace)
}

// get asks the agent of node for path with the query, and decodes its JSON answer into out.
func (a *agents) get(ctx context.Context, node, path string, query url.Values, out any) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	pod, port, err := a.agentPod(ctx, node)
	if err != nil {
		return err
	}
	local, stop, err := a.forward(pod, port)
	if err != nil {
		return fmt.Errorf("port-forward to the agent %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	defer stop()
	hc, err := a.agentHTTPClient()
	if err != nil {
		return err
	}
	u := url.URL{Scheme: "https", Host: "127.0.0.1:" + strconv.Itoa(local), Path: path, RawQuery: query.Encode()}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("asking the agent of node %s: %w", node, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("reading the answer of the agent of node %s: %w", node, err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
		return json.Unmarshal(body, out)
	case http.StatusUnauthorized, http.StatusForbidden:
		return fmt.Errorf("the agent of node %s refused the request (%s): %s; see the README's RBAC for explain", node, resp.Status, trim(body))
	default:
		return fmt.Errorf("the agent of node %s answered %s: %s", node, resp.Status, trim(body))
	}
}

// agentHTTPClient sends the caller's credentials of the kubeconfig (token, exec plugin or client
// certificate) to the agent. The agent's serving certificate is its own, signed by no CA the
// kubeconfig knows, so it is not verified: the connection is the API server's port-forward to the
// agent's pod, which the API server and the node's kubelet authenticate.
func (a *agents) agentHTTPClient() (*http.Client, error) {
	tc, err := a.cfg.TransportConfig()
	if err != nil {
		return nil, err
	}
	tc.TLS.Insecure, tc.TLS.CAData, tc.TLS.CAFile, tc.TLS.ServerName = true, nil, "", ""
	rt, err := transport.New(tc)
	if err != nil {
		return nil, fmt.Errorf("building the transport to the agent: %w", err)
	}
	return &http.Client{Transport: rt}, nil
}

// forward opens a port-forward to the pod's port on a free local port, as kubectl port-forward does
// (WebSocket, falling back to SPDY), and returns the local port and a function that stops it.
func (a *agents) forward(pod *corev1.Pod, port int) (int, func(), error) {
	rt, upgrader, err := spdy.RoundTripperFor(a.cfg)
	if err != nil {
		return 0, nil, err
	}
	u := a.client.CoreV1().RESTClient().Post().Resource("pods").Namespace(pod.Namespace).Name(pod.Name).SubResource("portforward").URL()
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: rt}, http.MethodPost, u)
	if ws, err := portforward.NewSPDYOverWebsocketDialer(u, a.cfg); err == nil {
		dialer = portforward.NewFallbackDialer(ws, dialer, func(err error) bool {
			return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
		})
	}
	stop, ready := make(chan struct{}), make(chan struct{})
	pf, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, []string{"0:" + strconv.Itoa(port)}, stop, ready, io.Discard, io.Discard)
	if err != nil {
		return 0, nil, err
	}
	done := make(chan error, 1)
	go func() { done <- pf.ForwardPorts() }()
	select {
	case <-ready:
	case err := <-done:
		if err == nil {
			err = errors.New("the port-forward ended before it was ready")
		}
		return 0, nil, err
	case <-time.After(20 * time.Second):
		close(stop)
		return 0, nil, errors.New("timed out waiting for the port-forward")
	}
	ports, err := pf.GetPorts()
	if err == nil && len(ports) != 1 {
		err = fmt.Errorf("%d ports forwarded, want 1", len(ports))
	}
	if err != nil {
		close(stop)
		return 0, nil, fmt.Errorf("reading the forwarded port: %w", err)
	}
	return int(ports[0].Local), func() { close(stop) }, nil
}

func trim(b []byte) string {
	const limit = 300
	if len(b) > limit {
		b = b[:limit]
	}
	return string(b)
}
