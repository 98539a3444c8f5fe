package nft

import (
	"maps"
	"net/netip"
	"testing"

	"k8s.io/apimachinery/pkg/util/sets"

	"github.com/nftpolicy/nftpolicy/selectors"
)

// The fail-closed mode over the guestbook model (IP plan in package nfttest), with the CNI's prefix
// "veth-" and two more local pods:
//
//	default/idle      198.18.0.40  veth-idle   selected by no policy
//	default/no-iface  198.18.0.50  (none)      its interface was not found yet
//
// and a pod the agent does not know at all: 198.18.0.30 behind veth-new.
const (
	failClosedPrefix = "veth-"
	idleIP           = "198.18.0.40"
	idleIface        = "veth-idle"
	noIfaceIP        = "198.18.0.50"
	newPodIP         = "198.18.0.30"
	newPodIface      = "veth-new"
)

func failClosedModel() (*selectors.Model, map[netip.Addr]string) {
	m := guestbookModel()
	m.LocalPods = append(m.LocalPods,
		makeLocalPod("default", "idle", withIPs(idleIP)),
		makeLocalPod("default", "no-iface", withIPs(noIfaceIP)))
	ifaces := guestbookInterfaces()
	ifaces[addr(idleIP)] = idleIface
	return m, ifaces
}

func compileFailClosed(prefix string) *Ruleset {
	m, ifaces := failClosedModel()
	return Compile(CompileInput{Table: "nftpolicy", Model: m, Interfaces: ifaces, PodInterfacePrefix: prefix})
}

func TestCompileFailClosedGolden(t *testing.T) {
	checkGolden(t, "guestbook-failclosed.nft", Render(Compile(CompileInput{
		Table: "nftpolicy", Model: guestbookModel(), Interfaces: guestbookInterfaces(), PodInterfacePrefix: failClosedPrefix,
	})))
}

func TestTraceFailClosed(t *testing.T) {
	fwd := func(iif, oif, src, dst string) Packet {
		return Packet{Hook: HookForward, Iifname: iif, Oifname: oif, Src: addr(src), Dst: addr(dst), Proto: ProtoTCP, DstPort: 80}
	}
	established := func(p Packet) Packet { p.Ct = CtEstablished; return p }
	nd := Packet{Hook: HookInput, Iifname: newPodIface, Src: addr("fe80::2"), Dst: addr("ff02::1:ff00:1"), Proto: ProtoICMPv6, ICMPv6Type: ICMPv6NeighborSolicit}
	cases := []struct {
		name           string
		packet         Packet
		want, wantOpen VerdictKind // with the prefix, and without (the default)
	}{
		{"an unknown pod reaches a remote pod",
			fwd(newPodIface, fabricIface, newPodIP, busyboxIP), Drop, Accept},
		{"a remote pod reaches an unknown pod",
			fwd(fabricIface, newPodIface, busyboxIP, newPodIP), Drop, Accept},
		{"an established packet to an unknown pod (its address was a deleted pod's)",
			established(fwd(fabricIface, newPodIface, busyboxIP, newPodIP)), Drop, Accept},
		{"an established packet from an unknown pod",
			established(fwd(newPodIface, fabricIface, newPodIP, busyboxIP)), Drop, Accept},
		{"an unknown pod reaches its node",
			Packet{Hook: HookInput, Iifname: newPodIface, Src: addr(newPodIP), Dst: addr(nodeIP), Proto: ProtoTCP, DstPort: 10250}, Drop, Accept},
		{"an unknown pod's neighbour discovery passes",
			nd, Accept, Accept},
		{"a known pod no policy selects sends",
			fwd(idleIface, fabricIface, idleIP, busyboxIP), Accept, Accept},
		{"a known pod no policy selects receives",
			fwd(fabricIface, idleIface, busyboxIP, idleIP), Accept, Accept},
		{"a pod whose interface is not known yet does not send",
			fwd("veth-x", fabricIface, noIfaceIP, busyboxIP), Drop, Accept},
		{"a pod whose interface is not known yet does not receive",
			fwd(fabricIface, "veth-x", busyboxIP, noIfaceIP), Drop, Accept},
		{"a new pod behind a known pod's interface name does not receive",
			fwd(fabricIface, guestbkIface, busyboxIP, newPodIP), Drop, Accept},
		{"a known pod to an unknown pod on the same node",
			fwd(idleIface, newPodIface, idleIP, newPodIP), Drop, Accept},
		{"programmed pods keep their policies: guestbook reaches redis",
			Packet{Hook: HookForward, Iifname: guestbkIface, Oifname: redisIface, Src: addr(guestbookIP), Dst: addr(redisIP), Proto: ProtoTCP, DstPort: 6379}, Accept, Accept},
		{"programmed pods keep their policies: busybox does not reach redis",
			fwd(fabricIface, redisIface, busyboxIP, redisIP), Drop, Drop},
		{"traffic between other interfaces is not the mode's",
			fwd(fabricIface, "eth1", busyboxIP, "203.0.113.5"), Accept, Accept},
	}
	closed, open := NewTracer(compileFailClosed(failClosedPrefix)), NewTracer(compileFailClosed(""))
	for _, c := range cases {
		if got := closed.Trace(c.packet); got.Verdict != c.want {
			t.Errorf("fail-closed: %s: %s -> %s, want %s (steps %v)", c.name, c.packet, verdictName(got.Verdict), verdictName(c.want), got.Steps)
		}
		if got := open.Trace(c.packet); got.Verdict != c.wantOpen {
			t.Errorf("default: %s: %s -> %s, want %s (steps %v)", c.name, c.packet, verdictName(got.Verdict), verdictName(c.wantOpen), got.Steps)
		}
	}
}

// A pod becomes programmed in the transaction that gives it its chains: its interface and address
// are set elements, lowered incrementally like the other sets, and the incremental ruleset equals
// a full compile.
func TestCompilerFailClosedProgramsANewPodIncrementally(t *testing.T) {
	m, ifaces := failClosedModel()
	var cc Compiler
	cc.Compile(CompileInput{Table: "nftpolicy", Model: m, Interfaces: ifaces, PodInterfacePrefix: failClosedPrefix})

	next, _ := failClosedModel()
	next.LocalPods = append(next.LocalPods, makeLocalPod("default", "new", withIPs(newPodIP)))
	nextIfaces := maps.Clone(ifaces)
	nextIfaces[addr(newPodIP)] = newPodIface
	changes := selectors.Changes{LocalPods: sets.New("default/new")}
	in := CompileInput{Table: "nftpolicy", Model: next, Changes: changes, Interfaces: nextIfaces, PodInterfacePrefix: failClosedPrefix}
	rs, changed := cc.Compile(in)
	if changed.Full {
		t.Fatal("adding a pod compiled everything")
	}
	for _, name := range []string{setPodIfaceAddrsV4, setPodIfaces} {
		if !changed.Set(name) {
			t.Errorf("changes do not name %s", name)
		}
	}
	if got, want := Render(rs), Render(Compile(in)); got != want {
		t.Errorf("incremental compile differs from a full one:\n%s\nwant:\n%s", got, want)
	}
	if v := NewTracer(rs).Trace(Packet{Hook: HookForward, Iifname: fabricIface, Oifname: newPodIface, Src: addr(busyboxIP), Dst: addr(newPodIP), Proto: ProtoTCP, DstPort: 80}); v.Verdict != Accept {
		t.Errorf("the programmed new pod (selected by no policy) is still closed: %v", v.Steps)
	}

	// Turning the mode off rewrites the static chains: a full compile.
	in.PodInterfacePrefix = ""
	if _, changed := cc.Compile(in); !changed.Full {
		t.Error("a compile with another prefix was not a full one")
	}
}

func TestValidIfnamePrefix(t *testing.T) {
	for _, ok := range []string{"cali", "veth", "lab", "tap.", "eni_", "azv-", "lxc", "a"} {
		if err := ValidIfnamePrefix(ok); err != nil {
			t.Errorf("ValidIfnamePrefix(%q) = %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{"", "l", "lo", "cali*", `ca"li`, "ca li", "ca/li", "0123456789abcdef"} {
		if err := ValidIfnamePrefix(bad); err == nil {
			t.Errorf("ValidIfnamePrefix(%q) = nil, want an error", bad)
		}
	}
}
