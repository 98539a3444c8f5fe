package nflog

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/nftpolicy/nftpolicy/lab/netlab"
)

// Kernel test plan: one lab node namespace, its own addresses on lo (netlab's address plan), pods
// where a test adds them. An output-hook chain of table inet nflogtest logs what the node sends to
// itself:
//
//	UDP and TCP to port 9001 -> log group 1 prefix "np:one"
//	UDP and TCP to port 9002 -> log group 2 prefix "np:two"
//	UDP to port 9003         -> limit rate 100/second burst 5 packets, log group 3 prefix "np:flood"
//	UDP to port 9004         -> log group 4 prefix "np:overrun"
//	UDP to port 9005         -> log group 5 prefix "np:batch"
//
// and a forward-hook chain what the node routes between its pods:
//
//	TCP to port 9006         -> log group 6 prefix "np:fwd"
//
// Nothing listens on those ports: a TCP SYN is answered by a reset, UDP goes unanswered.
const (
	testTable = "nflogtest"

	portOne, groupOne         = 9001, 1
	portTwo, groupTwo         = 9002, 2
	portFlood, groupFlood     = 9003, 3
	portOverrun, groupOverrun = 9004, 4
	portBatch, groupBatch     = 9005, 5
	portForward, groupForward = 9006, 6

	floodRate, floodBurst = 100, 5
	floodPackets          = 10000

	// waitRecords bounds the wait for records that must come: a liveness bound, not a speed claim.
	waitRecords = 5 * time.Second
)

// logRule is `meta l4proto <proto> th dport <port> [limit] log group <group> prefix "<prefix>"`.
func logRule(proto uint8, port, group uint16, prefix string, limit *expr.Limit) []expr.Any {
	exprs := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(port)},
	}
	if limit != nil {
		exprs = append(exprs, limit)
	}
	// nft sets a key bit for each option the statement names.
	return append(exprs, &expr.Log{Key: 1<<unix.NFTA_LOG_GROUP | 1<<unix.NFTA_LOG_PREFIX, Group: group, Data: []byte(prefix)})
}

// logNode creates the node namespace with the logging table; both are removed when the test ends.
func logNode(t *testing.T) *netlab.Node {
	t.Helper()
	lab := netlab.NewForTest(t)
	node, err := lab.AddNode()
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(node.Path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	c, err := nftables.New(nftables.WithNetNSFd(int(f.Fd())))
	if err != nil {
		t.Fatal(err)
	}
	table := c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: testTable})
	accept := nftables.ChainPolicyAccept
	chain := c.AddChain(&nftables.Chain{Name: "output", Table: table, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityFilter, Policy: &accept})
	rules := [][]expr.Any{
		logRule(unix.IPPROTO_UDP, portOne, groupOne, "np:one", nil),
		logRule(unix.IPPROTO_TCP, portOne, groupOne, "np:one", nil),
		logRule(unix.IPPROTO_UDP, portTwo, groupTwo, "np:two", nil),
		logRule(unix.IPPROTO_TCP, portTwo, groupTwo, "np:two", nil),
		logRule(unix.IPPROTO_UDP, portFlood, groupFlood, "np:flood",
			&expr.Limit{Type: expr.LimitTypePkts, Rate: floodRate, Unit: expr.LimitTimeSecond, Burst: floodBurst}),
		logRule(unix.IPPROTO_UDP, portOverrun, groupOverrun, "np:overrun", nil),
		logRule(unix.IPPROTO_UDP, portBatch, groupBatch, "np:batch", nil),
	}
	for _, exprs := range rules {
		c.AddRule(&nftables.Rule{Table: table, Chain: chain, Exprs: exprs})
	}
	forward := c.AddChain(&nftables.Chain{Name: "forward", Table: table, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &accept})
	c.AddRule(&nftables.Rule{Table: table, Chain: forward, Exprs: logRule(unix.IPPROTO_TCP, portForward, groupForward, "np:fwd", nil)})
	if err := c.Flush(); err != nil {
		t.Skipf("nf_tables with log and limit is not available: %v", err)
	}
	waitLocal(t, node, node.IPv4, node.IPv6)
	t.Cleanup(func() { // before the lab's cleanup, registered earlier
		c.DelTable(table)
		if err := c.Flush(); err != nil {
			t.Errorf("deleting table %s: %v", testTable, err)
		}
	})
	return node
}

// waitLocal waits until the node routes each of addrs to itself. The kernel installs the local
// route of an IPv6 address from a work queue after adding the address, even without duplicate
// address detection; until then only the address's prefix route exists, and a connection to it
// fails with "network is unreachable".
func waitLocal(t *testing.T, node *netlab.Node, addrs ...netip.Addr) {
	t.Helper()
	deadline := time.Now().Add(waitRecords)
	for _, addr := range addrs {
		for {
			var routeType int
			err := node.Do(func() error {
				routes, err := netlink.RouteGet(addr.AsSlice())
				if err == nil && len(routes) > 0 {
					routeType = routes[0].Type
				}
				return err
			})
			if err == nil && routeType == unix.RTN_LOCAL {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the node does not route %s to itself after %s: route type %d, %v", addr, waitRecords, routeType, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// reading runs Read on r until the test ends and forwards the records; the returned channel
// yields Read's result once it returned.
func reading(t *testing.T, ctx context.Context, r *Reader) (<-chan Record, <-chan error) {
	t.Helper()
	records := make(chan Record, 2*floodPackets)
	done := make(chan error, 1)
	go func() { done <- r.Read(ctx, func(rec Record) { records <- rec }) }()
	return records, done
}

// sendUDP sends n datagrams from src to dst inside ns.
func sendUDP(t *testing.T, ns *netlab.Netns, src, dst netip.AddrPort, n int) {
	t.Helper()
	var conn net.PacketConn
	err := ns.Do(func() error {
		var err error
		conn, err = net.ListenPacket("udp", src.String())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	to := net.UDPAddrFromAddrPort(dst)
	for range n {
		if _, err := conn.WriteTo([]byte("ping"), to); err != nil {
			t.Fatalf("sending UDP from %s to %s: %v", src, dst, err)
		}
	}
}

// sendSYN opens a TCP connection from src to dst inside ns; nothing listens, so only the SYN goes.
func sendSYN(t *testing.T, ns *netlab.Netns, src, dst netip.AddrPort) {
	t.Helper()
	err := ns.Do(func() error {
		d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(src), Timeout: waitRecords}
		conn, err := d.Dial("tcp", dst.String())
		if err == nil {
			_ = conn.Close()
			return errors.New("connected: something listens")
		}
		if !errors.Is(err, unix.ECONNREFUSED) {
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatalf("sending a SYN from %s to %s: %v", src, dst, err)
	}
}

// collect takes n records, failing the test if they do not come.
func collect(t *testing.T, records <-chan Record, n int) []Record {
	t.Helper()
	var got []Record
	timeout := time.After(waitRecords)
	for len(got) < n {
		select {
		case rec := <-records:
			got = append(got, rec)
		case <-timeout:
			t.Fatalf("got %d records within %s, want %d: %+v", len(got), waitRecords, n, got)
		}
	}
	return got
}

// expectNoMore fails if a record comes within a short while: used after all expected ones came.
func expectNoMore(t *testing.T, records <-chan Record, name string) {
	t.Helper()
	select {
	case rec := <-records:
		t.Errorf("%s: unexpected record %+v", name, rec)
	case <-time.After(200 * time.Millisecond):
	}
}

func openReader(t *testing.T, node *netlab.Node, group uint16, opts Options) *Reader {
	t.Helper()
	r, err := Open(node.Path, group, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

func TestReadRecordsOfTwoGroups(t *testing.T) {
	node := logNode(t)
	one := openReader(t, node, groupOne, Options{})
	two := openReader(t, node, groupTwo, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	recordsOne, doneOne := reading(t, ctx, one)
	recordsTwo, doneTwo := reading(t, ctx, two)

	// A group has one reader at a time.
	if r, err := Open(node.Path, groupOne, Options{}); !errors.Is(err, unix.EPERM) {
		if r != nil {
			_ = r.Close()
		}
		t.Errorf("opening group %d twice: %v, want EPERM", groupOne, err)
	}

	type flow struct {
		proto    uint8
		src, dst netip.AddrPort
	}
	wantOne := []flow{
		{ProtoTCP, netip.AddrPortFrom(node.IPv4, 41001), netip.AddrPortFrom(node.IPv4, portOne)},
		{ProtoUDP, netip.AddrPortFrom(node.IPv4, 41002), netip.AddrPortFrom(node.IPv4, portOne)},
		{ProtoTCP, netip.AddrPortFrom(node.IPv6, 41003), netip.AddrPortFrom(node.IPv6, portOne)},
		{ProtoUDP, netip.AddrPortFrom(node.IPv6, 41004), netip.AddrPortFrom(node.IPv6, portOne)},
	}
	wantTwo := flow{ProtoUDP, netip.AddrPortFrom(node.IPv4, 41005), netip.AddrPortFrom(node.IPv4, portTwo)}
	for _, f := range append(wantOne, wantTwo) {
		if f.proto == ProtoTCP {
			sendSYN(t, &node.Netns, f.src, f.dst)
		} else {
			sendUDP(t, &node.Netns, f.src, f.dst, 1)
		}
	}

	check := func(rec Record, prefix string, want flow) {
		t.Helper()
		p, err := rec.Packet()
		if err != nil {
			t.Fatalf("decoding %+v: %v", rec, err)
		}
		got := flow{p.Proto, netip.AddrPortFrom(p.Src, p.SrcPort), netip.AddrPortFrom(p.Dst, p.DstPort)}
		if rec.Prefix != prefix || got != want {
			t.Errorf("record %q %+v, want %q %+v", rec.Prefix, got, prefix, want)
		}
		if want.proto == ProtoTCP && p.TCPFlags != TCPSyn {
			t.Errorf("TCP flags %#x, want SYN", p.TCPFlags)
		}
		wantFamily := uint8(unix.NFPROTO_IPV4)
		if want.src.Addr().Is6() {
			wantFamily = unix.NFPROTO_IPV6
		}
		// Sent to the node's own address: the output hook, out by lo (ifindex 1), no input device.
		if rec.Family != wantFamily || rec.Hook != unix.NF_INET_LOCAL_OUT || rec.OutIfindex != 1 || rec.InIfindex != 0 {
			t.Errorf("record family %d hook %d in %d out %d, want family %d on the output hook out of lo",
				rec.Family, rec.Hook, rec.InIfindex, rec.OutIfindex, wantFamily)
		}
		if len(rec.Payload) > DefaultCopyRange {
			t.Errorf("payload of %d bytes, more than the copy range %d", len(rec.Payload), DefaultCopyRange)
		}
	}
	for i, rec := range collect(t, recordsOne, len(wantOne)) {
		check(rec, "np:one", wantOne[i])
	}
	check(collect(t, recordsTwo, 1)[0], "np:two", wantTwo)
	expectNoMore(t, recordsOne, "group 1")
	expectNoMore(t, recordsTwo, "group 2")

	// Close ends Read with nil; cancelling the context ends it with the context's error.
	if err := one.Close(); err != nil {
		t.Errorf("closing group 1: %v", err)
	}
	waitRead(t, doneOne, nil)
	cancel()
	waitRead(t, doneTwo, context.Canceled)

	// The closed group can be bound again.
	again := openReader(t, node, groupOne, Options{})
	if err := again.Close(); err != nil {
		t.Errorf("closing group 1 again: %v", err)
	}
}

func waitRead(t *testing.T, done <-chan error, want error) {
	t.Helper()
	select {
	case err := <-done:
		if !errors.Is(err, want) {
			t.Errorf("Read returned %v, want %v", err, want)
		}
	case <-time.After(waitRecords):
		t.Fatalf("Read did not return within %s", waitRecords)
	}
}

// TestFloodIsBoundedByTheRuleLimit sends floodPackets datagrams through a rule limited to floodRate
// per second with a burst of floodBurst: the records are bounded by the limit, and the reader keeps
// up with them without loss.
func TestFloodIsBoundedByTheRuleLimit(t *testing.T) {
	node := logNode(t)
	r := openReader(t, node, groupFlood, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	records, done := reading(t, ctx, r)

	start := time.Now()
	sendUDP(t, &node.Netns, netip.AddrPortFrom(node.IPv4, 42000), netip.AddrPortFrom(node.IPv4, portFlood), floodPackets)
	sending := time.Since(start)
	first := collect(t, records, floodBurst) // the burst passes at once
	time.Sleep(500 * time.Millisecond)       // records of the last packets may still be on their way
	n := len(first) + len(records)

	// The limit passes the burst, then one packet per 1/floodRate s, only while packets are sent;
	// the slack covers the rounding of the kernel's token bucket.
	const slack = 10
	bound := floodBurst + int(sending.Seconds()*floodRate) + slack
	t.Logf("%d packets sent in %s: %d records (bound %d), %d overruns, %d lost", floodPackets, sending, n, bound, r.Overruns(), r.Lost())
	if n > bound {
		t.Errorf("%d records, want at most %d", n, bound)
	}
	if r.Overruns() != 0 || r.Lost() != 0 {
		t.Errorf("%d overruns, %d lost; want none at this rate", r.Overruns(), r.Lost())
	}
	if err := r.Close(); err != nil {
		t.Error(err)
	}
	waitRead(t, done, nil)
}

// TestOverrunIsCountedAndReadGoesOn stalls the handler while an unlimited flood fills a small
// receive buffer: Read reports the overrun, counts the lost records and goes on reading.
func TestOverrunIsCountedAndReadGoesOn(t *testing.T) {
	node := logNode(t)
	r := openReader(t, node, groupOverrun, Options{ReadBuffer: 4096})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	release := make(chan struct{})
	records := make(chan Record, floodPackets)
	done := make(chan error, 1)
	go func() {
		done <- r.Read(ctx, func(rec Record) {
			<-release // stalled until the flood has been sent
			records <- rec
		})
	}()

	sendUDP(t, &node.Netns, netip.AddrPortFrom(node.IPv4, 43000), netip.AddrPortFrom(node.IPv4, portOverrun), floodPackets)
	close(release)
	// Datagrams from another port after the flood, until one is read: Read must get past the
	// overrun. The first ones may be lost too while the kernel still finds the buffer full.
	after := netip.AddrPortFrom(node.IPv4, 43001)
	var n int
	var last Record
	timeout := time.After(waitRecords)
	resend := time.NewTicker(50 * time.Millisecond)
	defer resend.Stop()
	for found := false; !found; {
		select {
		case last = <-records:
			n++
			p, err := last.Packet()
			found = err == nil && netip.AddrPortFrom(p.Src, p.SrcPort) == after
		case <-resend.C:
			sendUDP(t, &node.Netns, after, netip.AddrPortFrom(node.IPv4, portOverrun), 1)
		case <-timeout:
			t.Fatalf("no record sent after the flood came within %s (%d records came)", waitRecords, n)
		}
	}
	t.Logf("%d packets flooded into a 4 KiB buffer: %d records read, %d overruns, %d lost", floodPackets, n, r.Overruns(), r.Lost())
	if r.Overruns() == 0 || r.Lost() == 0 {
		t.Errorf("%d overruns, %d lost; want both counted", r.Overruns(), r.Lost())
	}
	// The kernel numbers the group's records from 0: every number up to the last is read or lost.
	if got, want := uint64(n)+r.Lost(), uint64(last.Seq)+1; got != want || want <= floodPackets {
		t.Errorf("%d read + %d lost = %d, want %d, the records numbered up to the last (more than %d)", n, r.Lost(), got, want, floodPackets)
	}
	if err := r.Close(); err != nil {
		t.Error(err)
	}
	waitRead(t, done, nil)
}

// TestBatchesAndReadAgain: with batches of 4 records, 10 datagrams come as two full batches and a
// partial one sent by the flush timer, all in order; a Read ended by its context can be followed by
// another Read on the same reader.
func TestBatchesAndReadAgain(t *testing.T) {
	node := logNode(t)
	r := openReader(t, node, groupBatch, Options{Batch: 4, FlushInterval: 20 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	_, done := reading(t, ctx, r)
	cancel()
	waitRead(t, done, context.Canceled)

	records, done := reading(t, context.Background(), r)
	const n = 10
	sendUDP(t, &node.Netns, netip.AddrPortFrom(node.IPv4, 44000), netip.AddrPortFrom(node.IPv4, portBatch), n)
	for i, rec := range collect(t, records, n) {
		if rec.Seq != uint32(i) || rec.Prefix != "np:batch" {
			t.Errorf("record %d: seq %d prefix %q, want seq %d prefix np:batch", i, rec.Seq, rec.Prefix, i)
		}
	}
	expectNoMore(t, records, "batched group")
	if err := r.Close(); err != nil {
		t.Error(err)
	}
	waitRead(t, done, nil)
}

// TestForwardedPacketsNameTheirInterfaces: a SYN that the node routes from pod a to pod b is logged
// on the forward hook with the node sides of both pods' veths.
func TestForwardedPacketsNameTheirInterfaces(t *testing.T) {
	node := logNode(t)
	a, err := node.AddPod("a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := node.AddPod("b")
	if err != nil {
		t.Fatal(err)
	}
	ifindex := func(name string) uint32 {
		t.Helper()
		var index int
		err := node.Do(func() error {
			link, err := netlink.LinkByName(name)
			if err == nil {
				index = link.Attrs().Index
			}
			return err
		})
		if err != nil {
			t.Fatalf("finding %s on the node: %v", name, err)
		}
		return uint32(index)
	}
	inA, outB := ifindex(a.HostIfname), ifindex(b.HostIfname)

	r := openReader(t, node, groupForward, Options{})
	records, done := reading(t, context.Background(), r)
	flows := [][2]netip.AddrPort{
		{netip.AddrPortFrom(a.IPv4, 45001), netip.AddrPortFrom(b.IPv4, portForward)},
		{netip.AddrPortFrom(a.IPv6, 45002), netip.AddrPortFrom(b.IPv6, portForward)},
	}
	for _, f := range flows {
		sendSYN(t, &a.Netns, f[0], f[1])
	}
	// A SYN lost on the way (while the node still resolves the pod's neighbour entry) is sent
	// again and logged again: a repeat of an expected flow is fine, anything else is not.
	check := func(rec Record) (flow int) {
		t.Helper()
		p, err := rec.Packet()
		if err != nil {
			t.Fatal(err)
		}
		got := [2]netip.AddrPort{netip.AddrPortFrom(p.Src, p.SrcPort), netip.AddrPortFrom(p.Dst, p.DstPort)}
		flow = slices.Index(flows, got)
		if rec.Prefix != "np:fwd" || flow < 0 || p.Proto != ProtoTCP || p.TCPFlags != TCPSyn {
			t.Errorf("record %q %v proto %d flags %#x, want np:fwd TCP SYN of one of %v", rec.Prefix, got, p.Proto, p.TCPFlags, flows)
		}
		if rec.Hook != unix.NF_INET_FORWARD || rec.InIfindex != inA || rec.OutIfindex != outB {
			t.Errorf("record hook %d in %d out %d, want forward (%d) in %d (%s) out %d (%s)",
				rec.Hook, rec.InIfindex, rec.OutIfindex, unix.NF_INET_FORWARD, inA, a.HostIfname, outB, b.HostIfname)
		}
		return flow
	}
	seen := make([]bool, len(flows))
	for !slices.Equal(seen, []bool{true, true}) {
		if flow := check(collect(t, records, 1)[0]); flow >= 0 {
			seen[flow] = true
		}
	}
	for len(records) > 0 {
		check(<-records)
	}
	if err := r.Close(); err != nil {
		t.Error(err)
	}
	waitRead(t, done, nil)
}
