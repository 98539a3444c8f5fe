package controllers_test

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nftpolicy/nftpolicy/lab/netlab"
)

// The kernel specs' cluster: two netlab node namespaces joined by a fabric veth, pod namespaces routed
// through their node, and for each of them a Node or Pod on the API server. Addresses follow netlab's
// plan, 198.18.<node>.<n> and fd18::<node>:<n>, n counting the node's pods in creation order; every pod
// is dual-stack and its status lists both addresses.
//
//	kernel-node-1 (netns node1): kernel-guestbook/redis-leader   198.18.1.1  fd18::1:1  app=redis
//	                             kernel-guestbook/guestbook      198.18.1.2  fd18::1:2  app=guestbook
//	                             kernel-guestbook/busybox-1      198.18.1.3  fd18::1:3  run=busybox
//	kernel-node-2 (netns node2): kernel-guestbook/redis-follower 198.18.2.1  fd18::2:1  app=redis
//	                             kernel-guestbook/busybox-2      198.18.2.2  fd18::2:2  run=busybox
//
// Both redis pods serve TCP and UDP echo on redisPort. The namespace and node names are the suite's own,
// so that the node-a agent of the other specs sees these pods as neither local nor peers.
const (
	kernelNamespace = "kernel-guestbook"
	kernelNode1     = "kernel-node-1"
	kernelNode2     = "kernel-node-2"
)

// kernelPod is one pod as both the network and the API server see it.
type kernelPod struct {
	namespace string
	name      string
	node      string // spec.nodeName
	labels    []string
	net       *netlab.Pod
}

func (p *kernelPod) addrs() []netip.Addr { return []netip.Addr{p.net.IPv4, p.net.IPv6} }

// addKernelPod plumbs a pod namespace on node and creates its Pod, Running with the pod's addresses
// written through the status subresource as the kubelet writes them.
func addKernelPod(node *netlab.Node, nodeName, name string, labels ...string) *kernelPod {
	return addKernelPodIn(kernelNamespace, node, nodeName, name, labels...)
}

// addKernelPodIn is addKernelPod in another namespace.
func addKernelPodIn(namespace string, node *netlab.Node, nodeName, name string, labels ...string) *kernelPod {
	n, err := node.AddPod(name)
	Expect(err).NotTo(HaveOccurred())
	p := &kernelPod{namespace: namespace, name: name, node: nodeName, labels: labels, net: n}
	createPod(makePod(namespace, name, withLabels(labels...), onNode(nodeName), runningAt(p.addrs()...)))
	return p
}

// runningAt is running for a dual-stack pod: podIP is the first address, podIPs all of them.
func runningAt(ips ...netip.Addr) podTweak {
	return func(p *corev1.Pod) {
		p.Status.Phase = corev1.PodRunning
		p.Status.PodIP = ips[0].String()
		p.Status.PodIPs = nil
		for _, ip := range ips {
			p.Status.PodIPs = append(p.Status.PodIPs, corev1.PodIP{IP: ip.String()})
		}
	}
}

func (p *kernelPod) object() *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: p.namespace, Name: p.name}}
}

func deleteKernelPod(p *kernelPod) {
	// No kubelet confirms the deletion: a zero grace period removes the object at once.
	Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, p.object(), client.GracePeriodSeconds(0)))).To(Succeed())
}

// Verdicts of a pair of pods in a reachability matrix.
const (
	allowed = "allowed" // every probe got through
	denied  = "denied"  // no probe got through
)

// probeTimeout bounds one connection attempt. A denied attempt takes all of it: the policy drops the SYN
// or the datagram, and nothing answers.
const probeTimeout = 750 * time.Millisecond

// A probe is one connection attempt to redisPort: a TCP connection that reads the server's greeting, or a
// UDP datagram that comes back, over one address family.
type probe struct {
	from, to *kernelPod
	proto    string // "tcp" or "udp"
	dst      netip.AddrPort
}

func probesBetween(from, to *kernelPod) []probe {
	var out []probe
	for _, proto := range []string{"tcp", "udp"} {
		for _, addr := range to.addrs() {
			out = append(out, probe{from: from, to: to, proto: proto, dst: netip.AddrPortFrom(addr, redisPort)})
		}
	}
	return out
}

func (p probe) pair() string { return p.from.name + " -> " + p.to.name }

func (p probe) String() string { return p.proto + " " + p.dst.String() }

func (p probe) run(timeout time.Duration) error {
	if p.proto == "tcp" {
		return p.from.net.ConnectTCP(p.dst, timeout)
	}
	return p.from.net.RequestUDP(p.dst, timeout)
}

// reachability probes from every client to every server, over TCP and UDP, IPv4 and IPv6, all at once.
// It returns a verdict per "client -> server": allowed, denied, or the probes that got through when only
// some did.
func reachability(clients, servers []*kernelPod) map[string]string {
	var probes []probe
	for _, from := range clients {
		for _, to := range servers {
			probes = append(probes, probesBetween(from, to)...)
		}
	}
	return verdictsOf(probes)
}

// verdictsOf runs the probes all at once and returns a verdict per "client -> server": allowed,
// denied, or the probes that got through when only some did.
func verdictsOf(probes []probe) map[string]string {
	through := make([]bool, len(probes))
	var wg sync.WaitGroup
	for i, p := range probes {
		wg.Go(func() { through[i] = p.run(probeTimeout) == nil })
	}
	wg.Wait()

	passed := map[string][]string{}
	total := map[string]int{}
	for i, p := range probes {
		total[p.pair()]++
		if through[i] {
			passed[p.pair()] = append(passed[p.pair()], p.String())
		}
	}
	verdicts := map[string]string{}
	for pair, n := range total {
		switch len(passed[pair]) {
		case 0:
			verdicts[pair] = denied
		case n:
			verdicts[pair] = allowed
		default:
			slices.Sort(passed[pair])
			verdicts[pair] = "only " + strings.Join(passed[pair], ", ")
		}
	}
	return verdicts
}

// leakWatch probes pairs that must stay denied, continuously, one goroutine per probe, and counts the
// connections that got through.
type leakWatch struct {
	stopping chan struct{}
	wg       sync.WaitGroup
	attempts atomic.Int64

	mu     sync.Mutex
	leaked []string // "when: probe" of every connection that got through
}

// leakProbeTimeout is short so that the watch leaves no long gap between attempts.
const leakProbeTimeout = 300 * time.Millisecond

func watchForLeaks(pairs ...[2]*kernelPod) *leakWatch {
	w := &leakWatch{stopping: make(chan struct{})}
	for _, pair := range pairs {
		for _, p := range probesBetween(pair[0], pair[1]) {
			w.wg.Go(func() {
				for {
					select {
					case <-w.stopping:
						return
					default:
					}
					w.attempts.Add(1)
					if p.run(leakProbeTimeout) == nil {
						w.mu.Lock()
						w.leaked = append(w.leaked, fmt.Sprintf("%s: %s %s", time.Now().Format(time.StampMicro), p.pair(), p))
						w.mu.Unlock()
						// A denied probe takes its whole timeout; a leaking one must not spin.
						time.Sleep(leakProbeTimeout)
					}
				}
			})
		}
	}
	return w
}

// stop ends the watch and returns the connections that got through.
func (w *leakWatch) stop() []string {
	close(w.stopping)
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.leaked
}
