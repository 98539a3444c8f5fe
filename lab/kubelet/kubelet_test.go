package kubelet

// The test runs a real kube-apiserver (envtest) configured with the kubelet client flags of a PKI,
// one Node whose kubelet endpoint is this package's server, and pods in network namespaces of a
// netlab node:
//
//	node-1 (netlab node 1): pods get 198.18.1.p and fd18::1:p in creation order
//	node address (hostIP):  198.19.0.1

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/transport/spdy"
	utilexec "k8s.io/client-go/util/exec"
	"k8s.io/streaming/pkg/httpstream"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/nftpolicy/nftpolicy/lab/netlab"
)

const (
	testNode      = "node-1"
	testNamespace = "default"
	shellRef      = "busybox:1.36"
)

var agnhostRef = AgnhostRepository + ":2.53"

// harness is a control plane, a kubelet and the fake sandboxes it uses.
type harness struct {
	t         *testing.T
	cfg       *rest.Config
	client    kubernetes.Interface
	kubelet   *Kubelet
	pki       *PKI
	sandboxes *recordingSandboxes
}

func startHarness(t *testing.T) *harness {
	t.Helper()
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		t.Skip("KUBEBUILDER_ASSETS is not set (kube-apiserver and etcd, hack/build-k8s.sh)")
	}
	nl := netlab.NewForTest(t)
	node, err := nl.AddNode()
	if err != nil {
		t.Fatal(err)
	}
	pki, err := NewPKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	env := &envtest.Environment{BinaryAssetsDirectory: assets}
	apiserver := env.ControlPlane.GetAPIServer()
	apiserver.Configure().Set("kubelet-client-certificate", pki.ClientCertFile)
	apiserver.Configure().Set("kubelet-client-key", pki.ClientKeyFile)
	apiserver.Configure().Set("kubelet-certificate-authority", pki.CAFile)
	apiserver.Configure().Set("kubelet-preferred-address-types", "Hostname")
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("starting the control plane: %v", err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stopping the control plane: %v", err)
		}
	})
	client := kubernetes.NewForConfigOrDie(cfg)
	kubeletClient := restrictedClient(t, env, client)
	h := &harness{t: t, cfg: cfg, client: client, pki: pki, sandboxes: &recordingSandboxes{NetlabSandboxes: NetlabSandboxes{
		Node: node, Families: []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol},
	}}}
	images := DefaultImages(filepath.Join(assets, "agnhost"))
	k, err := Start(context.Background(), Config{
		NodeName:       testNode,
		Client:         kubeletClient,
		Sandboxes:      h.sandboxes,
		Images:         images,
		HostIPs:        []netip.Addr{node.IPv4},
		PKI:            pki,
		LogDir:         t.TempDir(),
		SkipAnnotation: NetnsAnnotation,
		Logf:           t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		pids := runningPIDs(k)
		if err := k.Stop(); err != nil {
			t.Errorf("stopping the kubelet: %v", err)
		}
		for _, pid := range pids {
			if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
				t.Errorf("process %d runs after Stop: kill 0 = %v", pid, err)
			}
		}
		if n := h.sandboxes.count(); n != 0 {
			t.Errorf("%d sandboxes left after Stop", n)
		}
	})
	h.kubelet = k
	h.createNode(k.Port())
	h.createServiceAccount()
	return h
}

// restrictedClient is a client for a user holding PolicyRules only.
func restrictedClient(t *testing.T, env *envtest.Environment, admin kubernetes.Interface) kubernetes.Interface {
	t.Helper()
	const user = "lab:kubelet:" + testNode
	ctx := context.Background()
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "lab-kubelet"}, Rules: PolicyRules()}
	if _, err := admin.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "lab-kubelet"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
	}
	if _, err := admin.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	authenticated, err := env.AddUser(envtest.User{Name: user}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return kubernetes.NewForConfigOrDie(authenticated.Config())
}

// in is the harness for the subtest t: its helpers fail t.
func (h *harness) in(t *testing.T) *harness {
	sub := *h
	sub.t = t
	return &sub
}

// createNode registers the Node as the lab will: Hostname 127.0.0.1 and the kubelet's port.
func (h *harness) createNode(port int) {
	ctx := context.Background()
	node, err := h.client.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: testNode}}, metav1.CreateOptions{})
	if err != nil {
		h.t.Fatal(err)
	}
	node.Status = corev1.NodeStatus{
		Addresses:       []corev1.NodeAddress{{Type: corev1.NodeHostName, Address: "127.0.0.1"}},
		DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: int32(port)}},
		Conditions:      []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady"}},
	}
	if _, err := h.client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
		h.t.Fatal(err)
	}
}

// createServiceAccount creates the default ServiceAccount that the controller manager would.
func (h *harness) createServiceAccount() {
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: testNamespace}}
	_, err := h.client.CoreV1().ServiceAccounts(testNamespace).Create(context.Background(), sa, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		h.t.Fatal(err)
	}
}

type podTweak func(*corev1.Pod)

func makePod(name, image string, command []string, tweaks ...podTweak) *corev1.Pod {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: testNamespace},
		Spec: corev1.PodSpec{
			NodeName:                      testNode,
			TerminationGracePeriodSeconds: ptrTo[int64](1),
			Containers:                    []corev1.Container{{Name: "c", Image: image, Command: command}},
		},
	}
	for _, tweak := range tweaks {
		tweak(pod)
	}
	return pod
}

func withRestartPolicy(p corev1.RestartPolicy) podTweak {
	return func(pod *corev1.Pod) { pod.Spec.RestartPolicy = p }
}

func withContainer(name, image string, command []string) podTweak {
	return func(pod *corev1.Pod) {
		pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{Name: name, Image: image, Command: command})
	}
}

// serveHostname is the command of upstream's netpol server containers.
func serveHostname(port int) []string {
	return []string{"/agnhost", "serve-hostname", "--tcp", "--http=false", "--port", fmt.Sprint(port)}
}

func withEnv(name, value string) podTweak {
	return func(pod *corev1.Pod) {
		pod.Spec.Containers[0].Env = append(pod.Spec.Containers[0].Env, corev1.EnvVar{Name: name, Value: value})
	}
}

func (h *harness) createPod(pod *corev1.Pod) *corev1.Pod {
	h.t.Helper()
	created, err := h.client.CoreV1().Pods(pod.Namespace).Create(context.Background(), pod, metav1.CreateOptions{})
	if err != nil {
		h.t.Fatal(err)
	}
	return created
}

// waitPod polls the pod until done says so, failing after 30 s with the last status.
func (h *harness) waitPod(name string, what string, done func(*corev1.Pod) bool) *corev1.Pod {
	h.t.Helper()
	var pod *corev1.Pod
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		var err error
		pod, err = h.client.CoreV1().Pods(testNamespace).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			h.t.Fatal(err)
		}
		if done(pod) {
			return pod
		}
		time.Sleep(100 * time.Millisecond)
	}
	h.t.Fatalf("pod %s is not %s; status: %+v", name, what, pod.Status)
	return nil
}

func (h *harness) waitRunning(name string) *corev1.Pod {
	h.t.Helper()
	return h.waitPod(name, "running and ready", func(p *corev1.Pod) bool {
		return p.Status.Phase == corev1.PodRunning && podReady(p)
	})
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// exec runs command in the pod's container through the API server with the given executor kind,
// returning stdout, stderr and the error.
func (h *harness) exec(kind, pod string, command ...string) (string, string, error) {
	h.t.Helper()
	req := h.client.CoreV1().RESTClient().Post().Resource("pods").Namespace(testNamespace).Name(pod).
		SubResource("exec").VersionedParams(&corev1.PodExecOptions{
		Container: "c", Command: command, Stdout: true, Stderr: true,
	}, scheme.ParameterCodec)
	var exec remotecommand.Executor
	var err error
	switch kind {
	case "spdy":
		exec, err = remotecommand.NewSPDYExecutor(h.cfg, "POST", req.URL())
	case "websocket":
		exec, err = remotecommand.NewWebSocketExecutor(h.cfg, "GET", req.URL().String())
	default:
		var ws, legacy remotecommand.Executor
		if ws, err = remotecommand.NewWebSocketExecutor(h.cfg, "GET", req.URL().String()); err == nil {
			if legacy, err = remotecommand.NewSPDYExecutor(h.cfg, "POST", req.URL()); err == nil {
				// As kubectl: WebSocket first, SPDY when the upgrade fails.
				exec, err = remotecommand.NewFallbackExecutor(ws, legacy, func(err error) bool {
					return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
				})
			}
		}
	}
	if err != nil {
		h.t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = exec.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: &stdout, Stderr: &stderr})
	return stdout.String(), stderr.String(), err
}

// portForward forwards a local port to the pod's port through the API server, over SPDY or, as
// kubectl does, SPDY tunneled in a WebSocket; it connects and returns what the server writes
// (agnhost serve-hostname writes its hostname and closes).
func (h *harness) portForward(tunneled bool, pod string, port int) string {
	h.t.Helper()
	transport, upgrader, err := spdy.RoundTripperFor(h.cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	url := h.client.CoreV1().RESTClient().Post().Resource("pods").Namespace(testNamespace).Name(pod).SubResource("portforward").URL()
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: transport}, "POST", url)
	if tunneled {
		ws, err := portforward.NewSPDYOverWebsocketDialer(url, h.cfg)
		if err != nil {
			h.t.Fatal(err)
		}
		dialer = ws
	}
	stop, ready := make(chan struct{}), make(chan struct{})
	defer close(stop)
	pf, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, []string{fmt.Sprintf("0:%d", port)}, stop, ready, io.Discard, io.Discard)
	if err != nil {
		h.t.Fatal(err)
	}
	forwarding := make(chan error, 1)
	go func() { forwarding <- pf.ForwardPorts() }()
	select {
	case <-ready:
	case err := <-forwarding:
		h.t.Fatalf("port-forward to %s:%d: %v", pod, port, err)
	}
	ports, err := pf.GetPorts()
	if err != nil {
		h.t.Fatal(err)
	}
	conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", ports[0].Local), 5*time.Second)
	if err != nil {
		h.t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	answer, err := io.ReadAll(conn)
	if err != nil {
		h.t.Errorf("reading from port-forward to %s:%d: %v", pod, port, err)
	}
	return strings.TrimSpace(string(answer))
}

// execTTY runs command on a terminal in the pod's container over SPDY with input as its stdin,
// returning the terminal's output and the error.
func (h *harness) execTTY(pod, input string, command ...string) (string, error) {
	h.t.Helper()
	req := h.client.CoreV1().RESTClient().Post().Resource("pods").Namespace(testNamespace).Name(pod).
		SubResource("exec").VersionedParams(&corev1.PodExecOptions{
		Container: "c", Command: command, Stdin: true, Stdout: true, TTY: true,
	}, scheme.ParameterCodec)
	exec, err := remotecommand.NewSPDYExecutor(h.cfg, "POST", req.URL())
	if err != nil {
		h.t.Fatal(err)
	}
	var stdout bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = exec.StreamWithContext(ctx, remotecommand.StreamOptions{Stdin: strings.NewReader(input), Stdout: &stdout, Tty: true})
	return stdout.String(), err
}

func (h *harness) deletePod(name string) {
	h.t.Helper()
	err := h.client.CoreV1().Pods(testNamespace).Delete(context.Background(), name, metav1.DeleteOptions{})
	if err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) waitPodGone(name string) {
	h.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		_, err := h.client.CoreV1().Pods(testNamespace).Get(context.Background(), name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	h.t.Fatalf("pod %s still exists", name)
}

// runningPIDs are the PIDs of every running container process of the kubelet.
func runningPIDs(k *Kubelet) []int {
	k.mu.Lock()
	defer k.mu.Unlock()
	var pids []int
	for _, w := range k.pods {
		w.mu.Lock()
		for _, c := range w.containers {
			if c.proc != nil && !c.proc.exited() {
				pids = append(pids, c.proc.cmd.Process.Pid)
			}
		}
		w.mu.Unlock()
	}
	return pids
}

// containerPIDs are the PIDs of the pod's container processes.
func (h *harness) containerPIDs(pod string) []int {
	h.t.Helper()
	w := h.kubelet.worker(testNamespace, pod)
	if w == nil {
		h.t.Fatalf("kubelet does not know pod %s", pod)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	var pids []int
	for _, c := range w.containers {
		pids = append(pids, c.proc.cmd.Process.Pid)
	}
	return pids
}

// TestKubelet runs pods through the API server as a user would: run, exec over SPDY and WebSocket,
// logs, failures, restarts and deletion.
func TestKubelet(t *testing.T) {
	h := startHarness(t)
	agnhost := filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "agnhost")
	if _, err := os.Stat(agnhost); err != nil {
		t.Skipf("agnhost is not built in KUBEBUILDER_ASSETS (hack/build-k8s.sh --e2e): %v", err)
	}
	// As upstream's netpol suite does: a server pod and a client pod probing it with agnhost connect.
	h.createPod(makePod("server", agnhostRef, serveHostname(80), withEnv("SERVE_PORT_80", "foo"),
		withContainer("c81", agnhostRef, serveHostname(81))))
	h.createPod(makePod("client", agnhostRef, nil))
	server := h.waitRunning("server")
	h.waitRunning("client")

	t.Run("status", func(t *testing.T) {
		h := h.in(t)
		var got []string
		for _, ip := range server.Status.PodIPs {
			got = append(got, ip.IP)
		}
		want := h.sandboxes.ipsOf("server")
		if len(want) != 2 || !want[0].Is4() || strings.Join(got, ",") != join(want) || server.Status.PodIP != got[0] {
			t.Errorf("podIP %s, podIPs %v; want the sandbox's %v, IPv4 first", server.Status.PodIP, got, want)
		}
		if server.Status.HostIP != "198.19.0.1" {
			t.Errorf("hostIP %q, want 198.19.0.1", server.Status.HostIP)
		}
		cs := server.Status.ContainerStatuses
		if len(cs) != 2 {
			t.Fatalf("container statuses %+v", cs)
		}
		for _, c := range cs {
			if !c.Ready || c.State.Running == nil || !strings.HasPrefix(c.ContainerID, "lab://") || c.RestartCount != 0 {
				t.Errorf("container status %+v", c)
			}
		}
		if cs[0].ContainerID == cs[1].ContainerID {
			t.Errorf("both containers have the ID %s", cs[0].ContainerID)
		}
	})

	for _, kind := range []string{"spdy", "websocket", "fallback"} {
		t.Run("exec-"+kind, func(t *testing.T) {
			h := h.in(t)
			for _, ip := range server.Status.PodIPs {
				for _, port := range []uint16{80, 81} {
					target := netip.AddrPortFrom(netip.MustParseAddr(ip.IP), port).String()
					stdout, stderr, err := h.exec(kind, "client", "/agnhost", "connect", target, "--timeout=1s", "--protocol=tcp")
					if err != nil {
						t.Errorf("connect %s: %v (stdout %q, stderr %q)", target, err, stdout, stderr)
					}
				}
				closed := netip.AddrPortFrom(netip.MustParseAddr(ip.IP), 82).String()
				_, _, err := h.exec(kind, "client", "/agnhost", "connect", closed, "--timeout=1s", "--protocol=tcp")
				var exitErr utilexec.CodeExitError
				if !errors.As(err, &exitErr) || exitErr.Code == 0 {
					t.Errorf("connect to closed port %s: got %v, want a non-zero exit code", closed, err)
				}
			}
		})
	}

	t.Run("upstream-netpol-pod", func(t *testing.T) {
		h := h.in(t)
		// The pod of upstream's netpol model (test/e2e/network/netpol/model.go, KubePod): agnhost
		// porter serving the ports named by its env, grace period 0.
		pod := makePod("porter", agnhostRef, []string{"/agnhost", "porter"}, func(p *corev1.Pod) {
			p.Spec.TerminationGracePeriodSeconds = ptrTo[int64](0)
			c := &p.Spec.Containers[0]
			c.Name, c.SecurityContext = "agnhost", &corev1.SecurityContext{}
			for _, proto := range []corev1.Protocol{corev1.ProtocolTCP, corev1.ProtocolUDP} {
				for _, port := range []int32{80, 81} {
					c.Env = append(c.Env, corev1.EnvVar{Name: fmt.Sprintf("SERVE_%s_PORT_%d", proto, port), Value: "foo"})
					c.Ports = append(c.Ports, corev1.ContainerPort{Protocol: proto, ContainerPort: port})
				}
			}
		})
		h.createPod(pod)
		porter := h.waitRunning("porter")
		for _, ip := range porter.Status.PodIPs {
			for _, proto := range []string{"tcp", "udp"} {
				for _, port := range []uint16{80, 81} {
					target := netip.AddrPortFrom(netip.MustParseAddr(ip.IP), port).String()
					if _, stderr, err := h.exec("fallback", "client", "/agnhost", "connect", target, "--timeout=1s", "--protocol="+proto); err != nil {
						t.Errorf("connect %s %s: %v (stderr %q)", proto, target, err, stderr)
					}
				}
			}
		}
		h.deletePod("porter")
		h.waitPodGone("porter")
	})

	t.Run("exec-exit-code", func(t *testing.T) {
		h := h.in(t)
		h.createPod(makePod("shell", shellRef, []string{"sleep", "3600"}))
		h.waitRunning("shell")
		stdout, _, err := h.exec("spdy", "shell", "sh", "-c", "echo in $HOSTNAME; exit 7")
		var exitErr utilexec.CodeExitError
		if !errors.As(err, &exitErr) || exitErr.Code != 7 {
			t.Errorf("exit 7: got %v", err)
		}
		if stdout != "in shell\n" {
			t.Errorf("stdout %q", stdout)
		}
		out, err := h.execTTY("shell", "tty -s && echo on-a-tty-$((1+1)); exit 5\n", "sh")
		if !errors.As(err, &exitErr) || exitErr.Code != 5 || !strings.Contains(out, "on-a-tty-2") {
			t.Errorf("sh on a terminal: got %q, %v; want on-a-tty-2 and exit code 5", out, err)
		}
		if _, _, err := h.exec("spdy", "shell", "/no/such/program"); err == nil {
			t.Errorf("exec of a program the image lacks succeeded")
		}
	})

	t.Run("logs", func(t *testing.T) {
		h := h.in(t)
		h.createPod(makePod("talker", shellRef, []string{"sh", "-c", "echo hello from $(POD_GREETING) && sleep 3600"},
			withEnv("POD_GREETING", "talker")))
		h.waitRunning("talker")
		deadline := time.Now().Add(10 * time.Second)
		var out []byte
		for time.Now().Before(deadline) {
			var err error
			out, err = h.client.CoreV1().Pods(testNamespace).GetLogs("talker", &corev1.PodLogOptions{Container: "c"}).DoRaw(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if string(out) == "hello from talker\n" {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Errorf("logs %q, want %q", out, "hello from talker\n")
	})

	t.Run("logs-follow", func(t *testing.T) {
		h := h.in(t)
		h.createPod(makePod("ticker", shellRef, []string{"sh", "-c", "echo one; sleep 1; echo two; sleep 3600"}))
		h.waitRunning("ticker")
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		stream, err := h.client.CoreV1().Pods(testNamespace).GetLogs("ticker", &corev1.PodLogOptions{Container: "c", Follow: true}).Stream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer stream.Close()
		lines := bufio.NewScanner(stream)
		var got []string
		for len(got) < 2 && lines.Scan() {
			got = append(got, lines.Text())
		}
		if strings.Join(got, " ") != "one two" {
			t.Errorf("followed lines %q (%v), want one, two", got, lines.Err())
		}
	})

	t.Run("port-forward", func(t *testing.T) {
		h := h.in(t)
		hostname, err := os.Hostname()
		if err != nil {
			t.Fatal(err)
		}
		for _, tunneled := range []bool{false, true} {
			for _, port := range []int{80, 81} {
				if got := h.portForward(tunneled, "server", port); got != hostname {
					t.Errorf("port-forward (tunneled %v) to port %d answered %q, want the hostname %q", tunneled, port, got, hostname)
				}
			}
		}
	})

	t.Run("unmapped-image", func(t *testing.T) {
		h := h.in(t)
		h.createPod(makePod("unmapped", "example.com/not/mapped:1", nil))
		pod := h.waitPod("unmapped", "Failed", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodFailed })
		cs := pod.Status.ContainerStatuses
		if len(cs) != 1 || cs[0].State.Waiting == nil || cs[0].State.Waiting.Reason != "ErrImageNeverPull" ||
			!strings.Contains(cs[0].State.Waiting.Message, "example.com/not/mapped:1") {
			t.Errorf("container statuses %+v", cs)
		}
	})

	t.Run("missing-command", func(t *testing.T) {
		h := h.in(t)
		h.createPod(makePod("nocommand", agnhostRef, []string{"/bin/bash"}))
		pod := h.waitPod("nocommand", "Failed", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodFailed })
		if w := pod.Status.ContainerStatuses[0].State.Waiting; w == nil || !strings.Contains(w.Message, "/bin/bash") {
			t.Errorf("container statuses %+v", pod.Status.ContainerStatuses)
		}
	})

	t.Run("restart-never", func(t *testing.T) {
		h := h.in(t)
		h.createPod(makePod("exit3", shellRef, []string{"sh", "-c", "exit 3"}, withRestartPolicy(corev1.RestartPolicyNever)))
		pod := h.waitPod("exit3", "Failed", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodFailed })
		if term := pod.Status.ContainerStatuses[0].State.Terminated; term == nil || term.ExitCode != 3 {
			t.Errorf("container statuses %+v", pod.Status.ContainerStatuses)
		}
		h.createPod(makePod("exit0", shellRef, []string{"true"}, withRestartPolicy(corev1.RestartPolicyOnFailure)))
		h.waitPod("exit0", "Succeeded", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodSucceeded })
	})

	t.Run("restart-always", func(t *testing.T) {
		h := h.in(t)
		h.createPod(makePod("crasher", shellRef, []string{"sh", "-c", "echo run; exit 1"}))
		pod := h.waitPod("crasher", "restarted", func(p *corev1.Pod) bool {
			return len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].RestartCount >= 1
		})
		if pod.Status.Phase != corev1.PodRunning {
			t.Errorf("phase %s, want Running while it restarts", pod.Status.Phase)
		}
		last := pod.Status.ContainerStatuses[0].LastTerminationState.Terminated
		if last == nil || last.ExitCode != 1 {
			t.Errorf("last termination %+v", last)
		}
	})

	t.Run("delete", func(t *testing.T) {
		h := h.in(t)
		pids := h.containerPIDs("server")
		path := h.sandboxes.pathOf("server")
		h.deletePod("server")
		h.waitPodGone("server")
		for _, pid := range pids {
			if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
				t.Errorf("process %d of the deleted pod: kill 0 = %v, want ESRCH", pid, err)
			}
		}
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			t.Errorf("sandbox %s still exists: %v", path, err)
		}
	})

	t.Run("host-network", func(t *testing.T) {
		h := h.in(t)
		h.createPod(makePod("hostnet", shellRef, []string{"sleep", "3600"}, func(p *corev1.Pod) { p.Spec.HostNetwork = true }))
		pod := h.waitRunning("hostnet")
		if pod.Status.PodIP != "198.19.0.1" {
			t.Errorf("podIP %s, want the node's 198.19.0.1", pod.Status.PodIP)
		}
		path := h.sandboxes.pathOf("hostnet")
		h.deletePod("hostnet")
		h.waitPodGone("hostnet")
		if _, err := os.Stat(path); err != nil {
			t.Errorf("the node's namespace %s is gone with its hostNetwork pod: %v", path, err)
		}
	})

	t.Run("skip-annotation", func(t *testing.T) {
		h := h.in(t)
		h.createPod(makePod("labpod", shellRef, []string{"sleep", "3600"}, func(p *corev1.Pod) {
			p.Annotations = map[string]string{NetnsAnnotation: "somewhere"}
		}))
		time.Sleep(time.Second)
		if h.sandboxes.pathOf("labpod") != "" || h.kubelet.worker(testNamespace, "labpod") != nil {
			t.Errorf("the kubelet runs a pod that carries %s", NetnsAnnotation)
		}
	})

	t.Run("port-forward-skipped", func(t *testing.T) {
		h := h.in(t)
		// A process of the lab's own, listening on the loopback of the namespace the pod names.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				_, _ = io.WriteString(c, "lab process")
				c.Close()
			}
		}()
		h.createPod(makePod("labagent", shellRef, []string{"sleep", "3600"}, func(p *corev1.Pod) {
			p.Annotations = map[string]string{NetnsAnnotation: fmt.Sprintf("/proc/%d/ns/net", os.Getpid())}
		}))
		if got := h.portForward(false, "labagent", ln.Addr().(*net.TCPAddr).Port); got != "lab process" {
			t.Errorf("port-forward to a skipped pod answered %q, want the lab process's answer", got)
		}
	})

	t.Run("tls", func(t *testing.T) {
		h := h.in(t)
		url := fmt.Sprintf("https://127.0.0.1:%d/healthz", h.kubelet.Port())
		noCert := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
		resp, err := noCert.Get(url)
		if err == nil {
			resp.Body.Close()
			t.Fatalf("a client without a certificate got %s", resp.Status)
		}
		if !strings.Contains(err.Error(), "certificate required") {
			t.Errorf("a client without a certificate: %v, want a TLS certificate failure", err)
		}
		cert, err := tls.LoadX509KeyPair(h.pki.ClientCertFile, h.pki.ClientKeyFile)
		if err != nil {
			t.Fatal(err)
		}
		withCert := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{
			Certificates: []tls.Certificate{cert}, RootCAs: h.pki.ServerTLSConfig().ClientCAs,
		}}}
		resp, err = withCert.Get(url)
		if err != nil {
			t.Fatalf("a client with the API server's certificate: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("healthz: %s", resp.Status)
		}
	})
}

// recordingSandboxes are NetlabSandboxes that remember the live sandboxes by pod name.
type recordingSandboxes struct {
	NetlabSandboxes
	mu   sync.Mutex
	live map[string]Sandbox
}

func (s *recordingSandboxes) Create(ctx context.Context, pod *corev1.Pod) (Sandbox, error) {
	sb, err := s.NetlabSandboxes.Create(ctx, pod)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.live == nil {
		s.live = map[string]Sandbox{}
	}
	s.live[pod.Name] = sb
	return &recordedSandbox{Sandbox: sb, s: s, name: pod.Name}, nil
}

func (s *recordingSandboxes) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.live)
}

func (s *recordingSandboxes) pathOf(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sb := s.live[name]; sb != nil {
		return sb.NetnsPath()
	}
	return ""
}

func (s *recordingSandboxes) ipsOf(name string) []netip.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.live[name].IPs()
}

type recordedSandbox struct {
	Sandbox
	s    *recordingSandboxes
	name string
}

func (b *recordedSandbox) Remove() error {
	b.s.mu.Lock()
	delete(b.s.live, b.name)
	b.s.mu.Unlock()
	return b.Sandbox.Remove()
}
