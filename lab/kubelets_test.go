package lab

import (
	"bytes"
	"context"
	"errors"
	"net"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	clientscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/remotecommand"

	"github.com/nftpolicy/nftpolicy/lab/kubelet"
)

// agnhostPod is a pod as upstream's netpol suite makes it: no node, agnhost serving TCP 80.
func agnhostPod(name string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "api-pods", Labels: map[string]string{"pod": name}},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: new(int64),
			Containers: []corev1.Container{{
				Name: "cont-80-tcp", Image: kubelet.AgnhostRepository + ":2.59",
				Command: []string{"/agnhost", "porter"},
				Env:     []corev1.EnvVar{{Name: "SERVE_PORT_80", Value: "foo"}},
				Ports:   []corev1.ContainerPort{{ContainerPort: 80, Name: "serve-80-tcp", Protocol: corev1.ProtocolTCP}},
			}},
		},
	}
}

// TestPodsThroughTheAPI creates pods the way the upstream e2e suite does, without a node:
// kube-scheduler places them, the nodes' kubelets run them, and exec through the API server
// reaches them; a NetworkPolicy then blocks the same connection.
func TestPodsThroughTheAPI(t *testing.T) {
	requireLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	l, err := Start(ctx, testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	pods := map[string]*corev1.Pod{}
	for _, name := range []string{"client", "server"} {
		pods[name] = runPodThroughAPI(t, l.Kubeconfig(), name)
	}

	connect := func() error {
		target := net.JoinHostPort(pods["server"].Status.PodIP, "80")
		return l.execIn(ctx, pods["client"], "/agnhost", "connect", target, "--timeout=1s", "--protocol=tcp")
	}
	if err := connect(); err != nil {
		t.Fatalf("client -> server without a policy: %v", err)
	}
	denyAll := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "deny-all", Namespace: "api-pods"},
		Spec:       networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}},
	}
	if err := l.ApplyPolicies(ctx, []*networkingv1.NetworkPolicy{denyAll}); err != nil {
		t.Fatal(err)
	}
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		var exit *remoteExitError
		err := connect()
		return errors.As(err, &exit), nil
	})
	if err != nil {
		t.Fatalf("client -> server still connects under a deny-all ingress policy: %v", err)
	}
}

// remoteExitError is a command that ran in a pod and exited non-zero.
type remoteExitError struct {
	err    error
	output string
}

func (e *remoteExitError) Error() string { return e.err.Error() + ": " + e.output }

// execIn runs a command in the pod's first container through the API server's exec subresource, as
// kubectl exec does; a non-zero exit is a *remoteExitError.
func (l *Lab) execIn(ctx context.Context, pod *corev1.Pod, command ...string) error {
	req := l.clientset.CoreV1().RESTClient().Post().Resource("pods").Namespace(pod.Namespace).Name(pod.Name).
		SubResource("exec").VersionedParams(&corev1.PodExecOptions{
		Container: pod.Spec.Containers[0].Name, Command: command, Stdout: true, Stderr: true,
	}, clientscheme.ParameterCodec)
	exec, err := remotecommand.NewSPDYExecutor(l.restConfig, "POST", req.URL())
	if err != nil {
		return err
	}
	// Two buffers: the streams are copied concurrently.
	var stdout, stderr bytes.Buffer
	err = exec.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: &stdout, Stderr: &stderr})
	var exit interface{ ExitStatus() int }
	if errors.As(err, &exit) {
		return &remoteExitError{err: err, output: stdout.String() + stderr.String()}
	}
	return err
}

// runPodThroughAPI creates agnhostPod(name) through the lab's kubeconfig and waits until it runs.
func runPodThroughAPI(t *testing.T, kubeconfig, name string) *corev1.Pod {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "api-pods"}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	// The ServiceAccount admission plugin wants the namespace's default ServiceAccount, which
	// kube-controller-manager creates.
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := cs.CoreV1().ServiceAccounts("api-pods").Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
	if err != nil {
		t.Fatalf("no default ServiceAccount: %v", err)
	}
	if _, err := cs.CoreV1().Pods("api-pods").Create(ctx, agnhostPod(name), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var pod *corev1.Pod
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		pod, err = cs.CoreV1().Pods("api-pods").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return pod.Status.Phase == corev1.PodRunning && pod.Status.PodIP != "", nil
	})
	if err != nil {
		t.Fatalf("pod %s never ran: %v; last seen %+v", name, err, pod.Status)
	}
	if pod.Spec.NodeName == "" {
		t.Fatalf("pod %s runs without a node", name)
	}
	return pod
}
