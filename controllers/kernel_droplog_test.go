package controllers_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"net/netip"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nftpolicy/nftpolicy/cmd/nftpolicy/agent"
	"github.com/nftpolicy/nftpolicy/controllers"
	"github.com/nftpolicy/nftpolicy/droplog"
	"github.com/nftpolicy/nftpolicy/lab/netlab"
	"github.com/nftpolicy/nftpolicy/nft"
)

// lines is a goroutine-safe sink of the drop log's JSON lines.
type lines struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lines) entries() []droplog.Entry {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []droplog.Entry
	for _, line := range strings.Split(strings.TrimSpace(l.buf.String()), "\n") {
		if line == "" {
			continue
		}
		var e droplog.Entry
		Expect(json.Unmarshal([]byte(line), &e)).To(Succeed(), line)
		out = append(out, e)
	}
	return out
}

// startLoggingAgent creates policies and starts the agent of one node with --drop-log=namespace on
// NFLOG group, writing its lines to the sink it returns; the policies and pods go at cleanup.
func startLoggingAgent(nodeName string, node *netlab.Node, group uint16, policies []*networkingv1.NetworkPolicy, pods ...*kernelPod) (*lines, *kernelAgent) {
	for _, p := range policies {
		Expect(k8sClient.Create(ctx, p)).To(Succeed())
	}
	DeferCleanup(func() {
		for _, p := range policies {
			Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, p))).To(Succeed())
		}
		for _, p := range pods {
			deleteKernelPod(p)
		}
	})
	out := &lines{}
	a := newKernelAgentTweaked(nodeName, node, true, func(o *agent.Options) {
		o.DropLog, o.DropLogGroup, o.DropLogPairRate, o.DropLogRate, o.DropLogOut = agent.DropLogNamespace, group, 5, 50, out
	})
	a.start()
	DeferCleanup(a.stop)
	return out, a
}

// One node whose agent runs with --drop-log=namespace; its namespace asks for `deny`. db is selected
// by two policies: allow-web (TCP redisPort from app=web) and deny-all (no ingress rule).
//
//	kernel-node-log (netns of a lab of its own): kernel-droplog/db    198.18.1.1  app=db
//	                                             kernel-droplog/web   198.18.1.2  app=web
//	                                             kernel-droplog/other 198.18.1.3  app=other
var _ = Describe("Drop logging on the kernel", Ordered, Label("kernel"), func() {
	const (
		logNamespace = "kernel-droplog"
		logNode      = "kernel-node-log"
	)
	var (
		db, web, other *kernelPod
		out            *lines
		logAgent       *kernelAgent
	)

	BeforeAll(func() {
		skipWithoutKernel()
		lab, err := netlab.New()
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() { Expect(lab.Close()).To(Succeed()) })
		node, err := lab.AddNode()
		Expect(err).NotTo(HaveOccurred())
		Expect(client.IgnoreAlreadyExists(k8sClient.Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: logNode}}))).To(Succeed())
		createNamespace(logNamespace)
		ns := &corev1.Namespace{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Name: logNamespace}, ns)).To(Succeed())
		ns.Annotations = map[string]string{controllers.LogAnnotation: "deny"}
		Expect(k8sClient.Update(ctx, ns)).To(Succeed())

		db = addKernelPodIn(logNamespace, node, logNode, "db", "app", "db")
		web = addKernelPodIn(logNamespace, node, logNode, "web", "app", "web")
		other = addKernelPodIn(logNamespace, node, logNode, "other", "app", "other")
		srv, err := db.net.Serve(redisPort)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(srv.Close)
		tcp := corev1.ProtocolTCP
		port := intstr.FromInt32(redisPort)
		policies := []*networkingv1.NetworkPolicy{
			{ObjectMeta: metav1.ObjectMeta{Namespace: logNamespace, Name: "allow-web"}, Spec: networkingv1.NetworkPolicySpec{
				PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}},
				Ingress: []networkingv1.NetworkPolicyIngressRule{{
					From:  []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}}},
					Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &port}},
				}}}},
			{ObjectMeta: metav1.ObjectMeta{Namespace: logNamespace, Name: "deny-all"}, Spec: networkingv1.NetworkPolicySpec{
				PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}},
				PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}}},
		}
		var a *kernelAgent
		out, a = startLoggingAgent(logNode, node, 7, policies, db, web, other)
		logAgent = a
		By("waiting until web reaches db and other does not")
		dst := netip.AddrPortFrom(db.net.IPv4, redisPort)
		Eventually(func() error { return web.net.ConnectTCP(dst, probeTimeout) }).WithTimeout(20 * time.Second).Should(Succeed())
		Eventually(func() error { return other.net.ConnectTCP(dst, probeTimeout) }).WithTimeout(20 * time.Second).ShouldNot(Succeed())
		// The denied probes above were logged: start the specs from an empty log.
		time.Sleep(1500 * time.Millisecond)
		out.mu.Lock()
		out.buf.Reset()
		out.mu.Unlock()
	})

	It("writes exactly one record for a denied connection, naming both isolating policies", func() {
		Expect(other.net.ConnectTCP(netip.AddrPortFrom(db.net.IPv4, redisPort), probeTimeout)).NotTo(Succeed())
		Eventually(out.entries).WithTimeout(5 * time.Second).Should(HaveLen(1))
		Consistently(out.entries).WithTimeout(2 * time.Second).Should(HaveLen(1))
		e := out.entries()[0]
		Expect(e.Reason).To(Equal(droplog.ReasonDefaultDeny))
		Expect(e.Direction).To(Equal("ingress"))
		Expect(e.Pod).To(Equal(logNamespace + "/db"))
		Expect(e.Policies).To(Equal([]string{logNamespace + "/allow-web", logNamespace + "/deny-all"}))
		Expect(e.Src.IP).To(Equal(other.net.IPv4))
		Expect(e.Src.Pod).To(Equal("other"))
		Expect(e.Dst.Port).To(BeEquivalentTo(redisPort))
		Expect(e.Node).To(Equal(logNode))
		Expect(e.Count).To(Equal(1))
	})

	It("writes nothing for an allowed connection under deny", func() {
		before := len(out.entries())
		Expect(web.net.ConnectTCP(netip.AddrPortFrom(db.net.IPv4, redisPort), probeTimeout)).To(Succeed())
		Consistently(out.entries).WithTimeout(2 * time.Second).Should(HaveLen(before))
	})

	It("bounds the records of a flood of 10,000 denied SYNs and counts what it suppressed", func() {
		before := len(out.entries())
		suppressed := testutil.ToFloat64(droplog.SuppressedTotal)
		sendSYNs(other, netip.AddrPortFrom(db.net.IPv4, redisPort), 10000)
		time.Sleep(2 * time.Second) // the last window ends
		var total int
		for _, e := range out.entries()[before:] {
			total += e.Count
		}
		GinkgoWriter.Printf("10,000 SYNs: %d lines, %d records\n", len(out.entries())-before, total)
		Expect(len(out.entries()) - before).To(BeNumerically(">=", 1))
		Expect(len(out.entries())-before).To(BeNumerically("<=", 10), "one line per window for one flow")
		Expect(total).To(BeNumerically("<", 100), "the per-pair limit holds the kernel's records")
		Expect(testutil.ToFloat64(droplog.SuppressedTotal) - suppressed).To(BeNumerically(">", 0))
	})

	It("writes one record naming the admitting rule for an allowed connection under all", func() {
		ns := &corev1.Namespace{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Name: logNamespace}, ns)).To(Succeed())
		ns.Annotations[controllers.LogAnnotation] = "all"
		Expect(k8sClient.Update(ctx, ns)).To(Succeed())
		Eventually(func() string {
			rs := logAgent.reconciler.Applier.Committed()
			if rs == nil {
				return ""
			}
			return nft.Render(rs)
		}).WithTimeout(10 * time.Second).Should(ContainSubstring(`log prefix "np/allow-in_`))
		before := len(out.entries())
		Expect(web.net.ConnectTCP(netip.AddrPortFrom(db.net.IPv4, redisPort), probeTimeout)).To(Succeed())
		Eventually(out.entries).WithTimeout(5 * time.Second).Should(HaveLen(before + 1))
		Consistently(out.entries).WithTimeout(2 * time.Second).Should(HaveLen(before + 1))
		e := out.entries()[before]
		Expect(e.Verdict).To(Equal(droplog.VerdictAllow))
		Expect(e.Reason).To(Equal(droplog.ReasonPolicyRule))
		Expect(e.Policies).To(Equal([]string{logNamespace + "/allow-web"}))
		Expect(e.Rule).To(HaveValue(Equal(0)))
		Expect(e.Pod).To(Equal(logNamespace + "/db"))
		Expect(e.Src.Pod).To(Equal("web"))
	})

	It("reports an unknown annotation value on the Namespace and changes nothing", func() {
		before := nft.Render(logAgent.reconciler.Applier.Committed())
		ns := &corev1.Namespace{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Name: logNamespace}, ns)).To(Succeed())
		ns.Annotations[controllers.LogAnnotation] = "verbose"
		Expect(k8sClient.Update(ctx, ns)).To(Succeed())
		Eventually(func(g Gomega) {
			var list eventsv1.EventList
			g.Expect(k8sClient.List(ctx, &list)).To(Succeed())
			var found []string
			for _, e := range list.Items {
				if e.Regarding.Kind == "Namespace" && e.Regarding.Name == logNamespace && e.Reason == controllers.ReasonBadLogAnnotation {
					found = append(found, e.Note)
				}
			}
			g.Expect(found).To(ConsistOf(ContainSubstring(`"verbose"`)))
		}).WithTimeout(10 * time.Second).Should(Succeed())
		Consistently(func() string { return nft.Render(logAgent.reconciler.Applier.Committed()) }).
			WithTimeout(2*kernelResyncPeriod).Should(Equal(before), "the namespace keeps logging all")
	})
})

// sendSYNs sends n TCP SYNs from the pod's IPv4 address to dst through a raw socket, from changing
// source ports, as fast as the socket takes them.
func sendSYNs(from *kernelPod, dst netip.AddrPort, n int) {
	Expect(from.net.Do(func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_TCP)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		sa := &unix.SockaddrInet4{Addr: dst.Addr().As4()}
		for i := range n {
			if err := unix.Sendto(fd, synSegment(from.net.IPv4, dst.Addr(), uint16(20000+i%40000), dst.Port()), 0, sa); err != nil {
				return err
			}
		}
		return nil
	})).To(Succeed())
}

// synSegment is a TCP SYN header with its checksum over the IPv4 pseudo-header.
func synSegment(src, dst netip.Addr, sport, dport uint16) []byte {
	seg := make([]byte, 20)
	binary.BigEndian.PutUint16(seg[0:2], sport)
	binary.BigEndian.PutUint16(seg[2:4], dport)
	binary.BigEndian.PutUint32(seg[4:8], uint32(sport)*7919)
	seg[12] = 5 << 4
	seg[13] = 0x02 // SYN
	binary.BigEndian.PutUint16(seg[14:16], 64240)
	pseudo := make([]byte, 0, 12+len(seg))
	s4, d4 := src.As4(), dst.As4()
	pseudo = append(pseudo, s4[:]...)
	pseudo = append(pseudo, d4[:]...)
	pseudo = append(pseudo, 0, unix.IPPROTO_TCP, 0, byte(len(seg)))
	pseudo = append(pseudo, seg...)
	var sum uint32
	for i := 0; i+1 < len(pseudo); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(pseudo[i:]))
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(seg[16:18], ^uint16(sum))
	return seg
}
