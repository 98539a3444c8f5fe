package harness

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/nftpolicy/nftpolicy/lab/netlab"
	"github.com/nftpolicy/nftpolicy/nft"
	"github.com/nftpolicy/nftpolicy/nft/kernel"
	"github.com/nftpolicy/nftpolicy/selectors"
	"github.com/nftpolicy/nftpolicy/test/bench/generator"
)

const (
	probeNamespace = "probe"
	probePort      = 5201
	probeInterval  = time.Millisecond
)

// MeasureResyncProbe adds two lab pods to the generated cluster, on the node under test: "client"
// and "server", with policies that allow only UDP from client to server (egress of the client,
// ingress of the server). It programs the node with the whole cluster's table, starts a UDP echo
// stream from client to server, and re-applies the full table resyncs times (a full replacement in
// one transaction each) while counting datagrams that did not come back.
func MeasureResyncProbe(params generator.Params, resyncs int) (*ProbeResult, error) {
	c, err := generator.Generate(params)
	if err != nil {
		return nil, err
	}
	lab, err := netlab.New()
	if err != nil {
		return nil, err
	}
	defer lab.Close()
	node, err := lab.AddNode()
	if err != nil {
		return nil, err
	}
	client, err := node.AddPod("client")
	if err != nil {
		return nil, err
	}
	server, err := node.AddPod("server")
	if err != nil {
		return nil, err
	}
	addProbePods(c.Snapshot, client, server)
	m := selectors.Resolve(c.Snapshot)
	ifaces := Interfaces(m)
	ifaces[client.IPv4], ifaces[server.IPv4] = client.HostIfname, server.HostIfname
	rs := nft.Compile(nft.CompileInput{Table: Table, Model: m, Interfaces: ifaces})

	backend, err := kernel.NewNetlinkBackend(node.Path)
	if err != nil {
		return nil, err
	}
	defer backend.Close()
	applier := nft.NewApplier(backend)
	if _, err := applier.Apply(rs, nft.FullChanges()); err != nil {
		return nil, fmt.Errorf("programming the probe node: %w", err)
	}
	srv, err := server.Serve(probePort)
	if err != nil {
		return nil, err
	}
	defer srv.Close()
	dst := netip.AddrPortFrom(server.IPv4, probePort)
	if err := client.RequestUDP(dst, time.Second); err != nil {
		return nil, fmt.Errorf("the allowed UDP flow does not pass before the resyncs: %w", err)
	}
	res := &ProbeResult{Resyncs: resyncs, IntervalUS: int(probeInterval / time.Microsecond)}
	// TCP to the same port is not allowed by the server's ingress policy.
	res.DeniedBefore = client.ConnectTCP(dst, 300*time.Millisecond) != nil

	var conn net.Conn
	if err := client.Do(func() error {
		var err error
		conn, err = net.Dial("udp4", dst.String())
		return err
	}); err != nil {
		return nil, err
	}
	defer conn.Close()
	var sent, received atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // sender
		defer wg.Done()
		buf := make([]byte, 8)
		tick := time.NewTicker(probeInterval)
		defer tick.Stop()
		for seq := uint64(0); ; seq++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			binary.BigEndian.PutUint64(buf, seq)
			if _, err := conn.Write(buf); err == nil {
				sent.Add(1)
			}
		}
	}()
	go func() { // receiver: stops at the first read timeout after the sender stopped
		defer wg.Done()
		buf := make([]byte, 64)
		for {
			_ = conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			if _, err := conn.Read(buf); err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					select {
					case <-stop:
						return
					default:
						continue
					}
				}
				continue // e.g. ICMP errors reported on a connected UDP socket
			}
			received.Add(1)
		}
	}()
	time.Sleep(200 * time.Millisecond) // the flow is established before the first resync
	var resyncErr error
	for range resyncs {
		applier.Forget() // the next Apply replaces the whole table, as after a restart
		start := time.Now()
		if _, err := applier.Apply(rs, nft.FullChanges()); err != nil {
			resyncErr = err
			break
		}
		res.ResyncMS = append(res.ResyncMS, ms(time.Since(start)))
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()
	res.Sent, res.Received = int(sent.Load()), int(received.Load())
	res.Lost = res.Sent - res.Received
	if resyncErr != nil {
		return res, fmt.Errorf("re-applying the table: %w", resyncErr)
	}
	return res, nil
}

// addProbePods puts the two lab pods into the snapshot on the node under test, with a policy
// isolating each: the client may send UDP to the server, the server may receive UDP from the client.
func addProbePods(s *selectors.Snapshot, client, server *netlab.Pod) {
	udp := corev1.ProtocolUDP
	port := intstr.FromInt32(probePort)
	ports := []networkingv1.NetworkPolicyPort{{Protocol: &udp, Port: &port}}
	peer := func(app string) []networkingv1.NetworkPolicyPeer {
		return []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": app}}}}
	}
	s.Namespaces = append(s.Namespaces, selectors.Namespace{Name: probeNamespace})
	for _, p := range []struct {
		name string
		pod  *netlab.Pod
	}{{"client", client}, {"server", server}} {
		s.Pods = append(s.Pods, selectors.Pod{
			Namespace: probeNamespace, Name: p.name, Labels: map[string]string{"app": "probe-" + p.name},
			IPs: []netip.Addr{p.pod.IPv4}, Node: generator.Node, Phase: corev1.PodRunning,
		})
	}
	s.Policies = append(s.Policies,
		&networkingv1.NetworkPolicy{
			ObjectMeta: metav1.ObjectMeta{Namespace: probeNamespace, Name: "client-egress"},
			Spec: networkingv1.NetworkPolicySpec{
				PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "probe-client"}},
				PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
				Egress:      []networkingv1.NetworkPolicyEgressRule{{To: peer("probe-server"), Ports: ports}},
			},
		},
		&networkingv1.NetworkPolicy{
			ObjectMeta: metav1.ObjectMeta{Namespace: probeNamespace, Name: "server-ingress"},
			Spec: networkingv1.NetworkPolicySpec{
				PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "probe-server"}},
				PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
				Ingress:     []networkingv1.NetworkPolicyIngressRule{{From: peer("probe-client"), Ports: ports}},
			},
		})
}
