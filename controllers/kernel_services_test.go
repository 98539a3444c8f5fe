package controllers_test

import (
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/nftpolicy/nftpolicy/lab/netlab"
	"github.com/nftpolicy/nftpolicy/nft"
	nftkernel "github.com/nftpolicy/nftpolicy/nft/kernel"
)

// Service traffic through a real kube-proxy in each of its modes, on the kernel: the agents of two
// nodes and a kube-proxy per node (the binary hack/build-k8s.sh builds beside kube-apiserver), real
// TCP and UDP through ClusterIPs. Policies must judge the backend pod and its target port: the
// Services listen on servicePort and target redisPort, and no policy mentions servicePort.
//
//	node 1: redis-leader (app=redis), guestbook (app=guestbook), busybox-1 (run=busybox)
//	node 2: redis-follower (app=redis), busybox-2 (run=busybox)
//	Services leader -> redis-leader, follower -> redis-follower, each servicePort -> redisPort over
//	TCP and UDP, with EndpointSlices written here as the EndpointSlice controller writes them.
//
// Each spec's policies are deleted when it ends.
var _ = Describe("Service traffic through kube-proxy on the kernel", Label("kernel"), func() {
	for _, mode := range []string{"nftables", "iptables", "ipvs"} {
		describeServicesUnder(mode)
	}
})

const servicePort = 80

// podCIDRs are netlab's pod addresses: kube-proxy's --cluster-cidr, so that pod -> Service traffic is
// not masqueraded, as in a cluster.
const podCIDRs = "198.18.0.0/16,fd18::/64"

func describeServicesUnder(mode string) {
	Describe("with --proxy-mode="+mode, Ordered, func() {
		namespace := "kernel-svc-" + mode
		nodeName := func(i int) string { return fmt.Sprintf("svc-%s-node-%d", mode, i) }
		var (
			node1, external                                           *netlab.Node
			redisLeader, redisFollower, guestbook, busybox1, busybox2 *kernelPod
			leaderIP, followerIP                                      netip.Addr
		)
		// through probes every client -> Service pair over TCP and UDP; the pair is named after the
		// Service's backend.
		through := func(clients ...*kernelPod) map[string]string {
			var probes []probe
			for _, from := range clients {
				for _, svc := range []struct {
					ip      netip.Addr
					backend *kernelPod
				}{{leaderIP, redisLeader}, {followerIP, redisFollower}} {
					for _, proto := range []string{"tcp", "udp"} {
						probes = append(probes, probe{from: from, to: svc.backend, proto: proto, dst: netip.AddrPortFrom(svc.ip, servicePort)})
					}
				}
			}
			return verdictsOf(probes)
		}
		clients := func() []*kernelPod { return []*kernelPod{guestbook, busybox1, busybox2} }
		expectThrough := func(want map[string]string, clients ...*kernelPod) {
			GinkgoHelper()
			Eventually(func() map[string]string { return through(clients...) }).WithTimeout(30 * time.Second).WithPolling(250 * time.Millisecond).Should(Equal(want))
		}

		BeforeAll(func() {
			skipWithoutKernel()
			if mode == "ipvs" {
				if reason := ipvsUnavailable(); reason != "" {
					Skip("kube-proxy's ipvs mode: " + reason + "; the IPVS path is checked at the rule level by nft's TestServiceTrafficIsJudgedAgainstTheBackend")
				}
			}
			kubeProxy := filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kube-proxy")
			_, err := os.Stat(kubeProxy)
			Expect(err).NotTo(HaveOccurred(), "kube-proxy is built beside kube-apiserver by hack/build-k8s.sh")
			for _, tool := range []string{"nsenter", "iptables", "ipset"} {
				_, err := exec.LookPath(tool)
				Expect(err).NotTo(HaveOccurred(), "kube-proxy needs %s (hack/setup.sh installs it)", tool)
			}

			lab, err := netlab.New()
			Expect(err).NotTo(HaveOccurred())
			DeferCleanup(func() { Expect(lab.Close()).To(Succeed()) })
			node1, err = lab.AddNode()
			Expect(err).NotTo(HaveOccurred())
			node2, err := lab.AddNode()
			Expect(err).NotTo(HaveOccurred())
			Expect(lab.Connect(node1, node2)).To(Succeed())
			// An external client: a namespace of its own joined to node 1 by a fabric link, with an
			// address outside the cluster's pod addresses, so kube-proxy treats it as off-cluster. It
			// exists before kube-proxy starts, which reads its NodePort addresses on full syncs only.
			external, err = lab.AddNode()
			Expect(err).NotTo(HaveOccurred())
			Expect(lab.Connect(node1, external)).To(Succeed())
			probeBackend, err := nftkernel.NewNetlinkBackend(node1.Path)
			Expect(err).NotTo(HaveOccurred())
			if err := nft.RemoveTable(probeBackend, table); err != nil {
				Skip("skipping the kernel specs: nf_tables is not available: " + err.Error())
			}
			Expect(probeBackend.Close()).To(Succeed())

			for i := range 2 {
				node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeName(i + 1)}}
				Expect(client.IgnoreAlreadyExists(k8sClient.Create(ctx, node))).To(Succeed())
				// The node's fabric address (netlab's plan: 198.19.<10a+b>.<side>): without an
				// InternalIP, kube-proxy waits 30 s for one before it starts.
				node.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP,
					Address: fmt.Sprintf("198.19.%d.%d", node1.Index*10+node2.Index, i+1)}}
				Expect(k8sClient.Status().Update(ctx, node)).To(Succeed())
			}
			createNamespace(namespace)
			redisLeader = addKernelPodIn(namespace, node1, nodeName(1), "redis-leader", "app", "redis")
			guestbook = addKernelPodIn(namespace, node1, nodeName(1), "guestbook", "app", "guestbook")
			busybox1 = addKernelPodIn(namespace, node1, nodeName(1), "busybox-1", "run", "busybox")
			redisFollower = addKernelPodIn(namespace, node2, nodeName(2), "redis-follower", "app", "redis")
			busybox2 = addKernelPodIn(namespace, node2, nodeName(2), "busybox-2", "run", "busybox")
			all := []*kernelPod{redisLeader, guestbook, busybox1, redisFollower, busybox2}
			DeferCleanup(func() {
				for _, p := range all {
					deleteKernelPod(p)
				}
			})
			for _, p := range []*kernelPod{redisLeader, redisFollower} {
				srv, err := p.net.Serve(redisPort)
				Expect(err).NotTo(HaveOccurred())
				DeferCleanup(srv.Close)
			}
			leaderIP = createService(namespace, "leader", redisLeader, nil)
			followerIP = createService(namespace, "follower", redisFollower, nil)

			agents := []*kernelAgent{newKernelAgent(nodeName(1), node1), newKernelAgent(nodeName(2), node2)}
			for _, a := range agents {
				a.start()
				DeferCleanup(a.stop)
			}
			kubeconfig := kubeProxyKubeconfig(mode)
			for i, n := range []*netlab.Node{node1, node2} {
				startKubeProxy(kubeProxy, kubeconfig, mode, nodeName(i+1), n)
			}

			By("checking that, with no policy, every client reaches both Services over TCP and UDP")
			expectThrough(map[string]string{
				"guestbook -> redis-leader": allowed, "guestbook -> redis-follower": allowed,
				"busybox-1 -> redis-leader": allowed, "busybox-1 -> redis-follower": allowed,
				"busybox-2 -> redis-leader": allowed, "busybox-2 -> redis-follower": allowed,
			}, clients()...)
		})

		It("judges Service traffic against the backend pod and its target port, same node and across nodes", func() {
			policy := sampleRedisPolicy()
			policy.Namespace = namespace
			// The ingress rule names the target port, never the Service port.
			policy.Spec.Ingress[0].Ports = []networkingv1.NetworkPolicyPort{
				{Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(intstr.FromInt32(redisPort))},
				{Protocol: ptr.To(corev1.ProtocolUDP), Port: ptr.To(intstr.FromInt32(redisPort))},
			}
			createPolicy(policy)
			expectThrough(map[string]string{
				"guestbook -> redis-leader":   allowed, // same node
				"guestbook -> redis-follower": allowed, // across nodes
				"busybox-1 -> redis-leader":   denied,  // same node
				"busybox-1 -> redis-follower": denied,  // across nodes
				"busybox-2 -> redis-leader":   denied,  // across nodes
				"busybox-2 -> redis-follower": denied,  // same node
			}, clients()...)
		})

		It("applies the client's egress policy to the backend too", func() {
			// guestbook may send only to app=redis on redisPort: the Service's address and port are
			// neither, so an egress check that saw them would drop everything.
			createPolicy(&networkingv1.NetworkPolicy{
				ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "guestbook-egress"},
				Spec: networkingv1.NetworkPolicySpec{
					PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "guestbook"}},
					PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
					Egress: []networkingv1.NetworkPolicyEgressRule{{
						To:    []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "redis"}}}},
						Ports: []networkingv1.NetworkPolicyPort{{Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(intstr.FromInt32(redisPort))}},
					}},
				},
			})
			expectThrough(map[string]string{"guestbook -> redis-leader": "only tcp " + netip.AddrPortFrom(leaderIP, servicePort).String(),
				"guestbook -> redis-follower": "only tcp " + netip.AddrPortFrom(followerIP, servicePort).String()}, guestbook)
		})

		It("applies both the egress and the ingress policies of a pod that reaches itself through its Service", func() {
			hairpin := func() map[string]string {
				var probes []probe
				for _, proto := range []string{"tcp", "udp"} {
					probes = append(probes, probe{from: redisLeader, to: redisLeader, proto: proto, dst: netip.AddrPortFrom(leaderIP, servicePort)})
				}
				return verdictsOf(probes)
			}
			const pair = "redis-leader -> redis-leader"
			By("redis's ingress admits guestbook pods only")
			policy := sampleRedisPolicy()
			policy.Namespace = namespace
			createPolicy(policy)
			Eventually(hairpin).WithTimeout(30 * time.Second).Should(Equal(map[string]string{pair: denied}))
			By("a second policy admits redis pods: the hairpin passes")
			createPolicy(&networkingv1.NetworkPolicy{
				ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "redis-from-redis"},
				Spec: networkingv1.NetworkPolicySpec{
					PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "redis"}},
					Ingress: []networkingv1.NetworkPolicyIngressRule{{
						From: []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "redis"}}}},
					}},
				},
			})
			Eventually(hairpin).WithTimeout(30 * time.Second).Should(Equal(map[string]string{pair: allowed}))
			By("isolating redis for egress: the hairpin is dropped again, by its egress")
			createPolicy(&networkingv1.NetworkPolicy{
				ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "redis-no-egress"},
				Spec: networkingv1.NetworkPolicySpec{
					PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "redis"}},
					PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
				},
			})
			Eventually(hairpin).WithTimeout(30 * time.Second).Should(Equal(map[string]string{pair: denied}))
		})

		It("shows a NodePort's external client to policies with externalTrafficPolicy Local, and the node's address with Cluster to a remote backend", func() {
			link := node1.Index*10 + external.Index
			clientAddr := fmt.Sprintf("198.19.%d.2", link)
			node1Addr := netip.MustParseAddr(fmt.Sprintf("198.19.%d.1", link))
			// node 1's address towards node 2, the source kube-proxy's masquerade gives forwarded traffic.
			node1ToNode2 := fmt.Sprintf("198.19.%d.1", node1.Index*10+2)
			nodePort := func(name string, backend *kernelPod, etp corev1.ServiceExternalTrafficPolicy, port int32) netip.AddrPort {
				createService(namespace, name, backend, func(svc *corev1.Service) {
					svc.Spec.Type = corev1.ServiceTypeNodePort
					svc.Spec.ExternalTrafficPolicy = etp
					svc.Spec.Ports = svc.Spec.Ports[:1]
					svc.Spec.Ports[0].NodePort = port
				})
				return netip.AddrPortFrom(node1Addr, uint16(port))
			}
			local := nodePort("leader-local", redisLeader, corev1.ServiceExternalTrafficPolicyLocal, 30080)
			cluster := nodePort("follower-cluster", redisFollower, corev1.ServiceExternalTrafficPolicyCluster, 30081)
			reaches := func(dst netip.AddrPort) func() error {
				return func() error { return external.ConnectTCP(dst, probeTimeout) }
			}
			By("with no policy, the client reaches both NodePorts")
			Eventually(reaches(local)).WithTimeout(30 * time.Second).Should(Succeed())
			Eventually(reaches(cluster)).WithTimeout(30 * time.Second).Should(Succeed())

			By("an ipBlock of the client's address admits it through the Local NodePort")
			createPolicy(ipBlockIngress(namespace, clientAddr+"/32"))
			Eventually(reaches(local)).WithTimeout(30 * time.Second).Should(Succeed())
			Consistently(reaches(local)).WithTimeout(2 * time.Second).Should(Succeed())
			By("but not through the Cluster NodePort to a backend on another node: that backend sees node 1's address")
			Eventually(reaches(cluster)).WithTimeout(30 * time.Second).ShouldNot(Succeed())

			By("an ipBlock of node 1's address admits the Cluster NodePort's forwarded traffic, and no longer the client's own")
			policy := ipBlockIngress(namespace, node1ToNode2+"/32")
			current := &networkingv1.NetworkPolicy{}
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(policy), current)).To(Succeed())
			current.Spec = policy.Spec
			Expect(k8sClient.Update(ctx, current)).To(Succeed())
			Eventually(reaches(cluster)).WithTimeout(30 * time.Second).Should(Succeed())
			Eventually(reaches(local)).WithTimeout(30 * time.Second).ShouldNot(Succeed())
		})
	})
}

// ipBlockIngress admits only cidr to app=redis pods, on redisPort over TCP.
func ipBlockIngress(namespace, cidr string) *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "redis-from-block"},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "redis"}},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From:  []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: cidr}}},
				Ports: []networkingv1.NetworkPolicyPort{{Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(intstr.FromInt32(redisPort))}},
			}},
		},
	}
}

// ipvsUnavailable says why kube-proxy's ipvs mode cannot run on this kernel, or "".
func ipvsUnavailable() string {
	_ = exec.Command("modprobe", "ip_vs").Run()
	if _, err := os.Stat("/proc/net/ip_vs"); err != nil {
		return "the kernel has no IPVS (ip_vs is neither built in nor loadable)"
	}
	return ""
}

func createPolicy(p *networkingv1.NetworkPolicy) {
	GinkgoHelper()
	Expect(k8sClient.Create(ctx, p)).To(Succeed())
	DeferCleanup(func() { Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, p))).To(Succeed()) })
}

// createService creates a Service without a selector, servicePort -> redisPort over TCP and UDP, and
// the EndpointSlice the EndpointSlice controller would write for backend. tweak, when set, changes the
// Service before it is created. It returns the ClusterIP.
func createService(namespace, name string, backend *kernelPod, tweak func(*corev1.Service)) netip.Addr {
	GinkgoHelper()
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{
			{Name: "tcp", Protocol: corev1.ProtocolTCP, Port: servicePort, TargetPort: intstr.FromInt32(redisPort)},
			{Name: "udp", Protocol: corev1.ProtocolUDP, Port: servicePort, TargetPort: intstr.FromInt32(redisPort)},
		}},
	}
	if tweak != nil {
		tweak(svc)
	}
	Expect(k8sClient.Create(ctx, svc)).To(Succeed())
	DeferCleanup(func() { Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, svc))).To(Succeed()) })
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name + "-1", Labels: map[string]string{
			discoveryv1.LabelServiceName: name, discoveryv1.LabelManagedBy: "kernel-specs"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{{
			Addresses:  []string{backend.net.IPv4.String()},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true), Terminating: ptr.To(false)},
			NodeName:   ptr.To(backend.node),
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: namespace, Name: backend.name},
		}},
		Ports: []discoveryv1.EndpointPort{
			{Name: ptr.To("tcp"), Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To[int32](redisPort)},
			{Name: ptr.To("udp"), Protocol: ptr.To(corev1.ProtocolUDP), Port: ptr.To[int32](redisPort)},
		},
	}
	Expect(k8sClient.Create(ctx, slice)).To(Succeed())
	DeferCleanup(func() { Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, slice))).To(Succeed()) })
	return netip.MustParseAddr(svc.Spec.ClusterIP)
}

// kubeProxyKubeconfig writes a kubeconfig for kube-proxy to reach the suite's API server.
func kubeProxyKubeconfig(mode string) string {
	GinkgoHelper()
	user, err := testEnv.AddUser(envtest.User{Name: "kube-proxy-" + mode, Groups: []string{"system:masters"}}, cfg)
	Expect(err).NotTo(HaveOccurred())
	data, err := user.KubeConfig()
	Expect(err).NotTo(HaveOccurred())
	path := filepath.Join(GinkgoT().TempDir(), "kube-proxy.kubeconfig")
	Expect(os.WriteFile(path, data, 0o600)).To(Succeed())
	return path
}

// startKubeProxy runs kube-proxy for nodeName in node's network namespace until the spec's cleanup,
// and returns once it has written its first rules. It reaches the API server on the suite's loopback
// through a forwarder at the same address inside the node's namespace.
func startKubeProxy(binary, kubeconfig, mode, nodeName string, node *netlab.Node) {
	GinkgoHelper()
	server, err := url.Parse(cfg.Host)
	Expect(err).NotTo(HaveOccurred())
	apiserver, err := netip.ParseAddrPort(server.Host)
	Expect(err).NotTo(HaveOccurred(), "the API server listens on %s", cfg.Host)
	fwd, err := node.ForwardTCP(apiserver, apiserver.String())
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(fwd.Close)
	cmd := exec.Command("nsenter", "--net="+node.Path, binary,
		"--kubeconfig="+kubeconfig,
		"--hostname-override="+nodeName,
		"--proxy-mode="+mode,
		"--cluster-cidr="+podCIDRs,
		// NodePorts on the nodes' fabric addresses, where the specs' external client reaches them.
		"--nodeport-addresses=198.19.0.0/16",
		// Loopback of the node's namespace: every node has its own.
		"--healthz-bind-address=127.0.0.1:10256",
		"--metrics-bind-address=127.0.0.1:10249",
		// Leave the conntrack sysctls alone: some of them are not per namespace.
		"--conntrack-max-per-core=0",
		"--conntrack-tcp-timeout-established=0",
		"--conntrack-tcp-timeout-close-wait=0",
		"-v=2")
	log, err := os.Create(filepath.Join(GinkgoT().TempDir(), "kube-proxy-"+nodeName+".log"))
	Expect(err).NotTo(HaveOccurred())
	cmd.Stdout, cmd.Stderr = log, log
	Expect(cmd.Start()).To(Succeed())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	DeferCleanup(func() {
		_ = cmd.Process.Kill()
		GinkgoWriter.Printf("kube-proxy of %s ended: %v\n", nodeName, <-exited)
		_ = log.Close()
		if CurrentSpecReport().Failed() {
			out, _ := os.ReadFile(log.Name())
			GinkgoWriter.Printf("kube-proxy of %s:\n%s\n", nodeName, tail(string(out), 40))
		}
	})
	Eventually(func() error {
		select {
		case err := <-exited:
			out, _ := os.ReadFile(log.Name())
			StopTrying(fmt.Sprintf("kube-proxy of %s exited: %v", nodeName, err)).Wrap(fmt.Errorf("%s", tail(string(out), 40))).Now()
		default:
		}
		out, _ := os.ReadFile(log.Name())
		if !strings.Contains(string(out), "SyncProxyRules complete") {
			return fmt.Errorf("kube-proxy of %s has not synced yet", nodeName)
		}
		return nil
	}).WithTimeout(60 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())
}

func tail(s string, lines int) string {
	all := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(all[max(0, len(all)-lines):], "\n")
}
