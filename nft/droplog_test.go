package nft

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/nftpolicy/nftpolicy/selectors"
)

// guestbookDropLog logs redis-master's default denies and the anti-spoofing drops, not guestbook-1's.
func guestbookDropLog() *DropLog {
	return &DropLog{Group: 7, PairRate: 5, Rate: 50, Pods: map[string]bool{"default/redis-master": true}, AntiSpoof: true}
}

func compileGuestbookLogged(dl *DropLog) *Ruleset {
	return Compile(CompileInput{Table: "nftpolicy", Model: guestbookModel(), Interfaces: guestbookInterfaces(), DropLog: dl})
}

func TestCompileGuestbookDropLogGolden(t *testing.T) {
	checkGolden(t, "guestbook-droplog.nft", Render(compileGuestbookLogged(guestbookDropLog())))
}

// guestbookLogAll also logs the allowed connections of guestbook-1.
func guestbookLogAll() *DropLog {
	dl := guestbookDropLog()
	dl.Pods["default/guestbook-1"] = true
	dl.AllPods = map[string]bool{"default/guestbook-1": true}
	return dl
}

func TestCompileGuestbookLogAllGolden(t *testing.T) {
	checkGolden(t, "guestbook-droplog-all.nft", Render(compileGuestbookLogged(guestbookLogAll())))
}

// TestLogAllLogsBeforeEachAcceptOfItsOwnVariant: a pod logging all jumps to a logging variant of its
// policy's chain, where a log rule naming the rule's counter precedes each accept.
func TestLogAllLogsBeforeEachAcceptOfItsOwnVariant(t *testing.T) {
	rs := compileGuestbookLogged(guestbookLogAll())
	var logged int
	for _, c := range rs.Chains {
		if !strings.HasPrefix(c.Name, policyEgressChainPrefix) {
			continue
		}
		if !strings.HasSuffix(c.Name, "_log") {
			t.Errorf("policy chain %s: want only the logging variant (guestbook-1 is its only pod)", c.Name)
			continue
		}
		for i, r := range c.Rules {
			if r.Verdict.Kind != Accept {
				continue
			}
			logged++
			prev := c.Rules[i-1]
			if prev.Log == nil || prev.Log.Prefix != LogPrefix+r.Counter || !slices.EqualFunc(prev.Matches[:len(r.Matches)], r.Matches, matchEqual) {
				t.Errorf("accept %s is preceded by %s, want a log rule with its matches naming %s", RenderRule(r), RenderRule(prev), r.Counter)
			}
			if p, ok := ParseLogPrefix(prev.Log.Prefix); !ok || p.Counter != r.Counter {
				t.Errorf("prefix %q parses as %+v, want counter %s", prev.Log.Prefix, p, r.Counter)
			}
		}
	}
	if logged == 0 {
		t.Fatal("no logged accept")
	}
	plain := compileGuestbook()
	for _, p := range []Packet{
		{Hook: HookForward, Iifname: guestbkIface, Src: addr(guestbookIP), Dst: addr(redisIP), Proto: ProtoTCP, DstPort: 6379},
		{Hook: HookForward, Iifname: guestbkIface, Src: addr(guestbookIP), Dst: addr(redisIP), Proto: ProtoTCP, DstPort: 80},
		{Hook: HookForward, Iifname: guestbkIface, Src: addr(guestbookIP), Dst: addr(externalDNS), Proto: ProtoUDP, DstPort: 53},
	} {
		if got, want := Trace(rs, p).Verdict, Trace(plain, p).Verdict; got != want {
			t.Errorf("%+v: %v when logging all, %v without", p, got, want)
		}
	}
}

func TestDropLogOffCompilesTheTableAsBefore(t *testing.T) {
	if got, want := Render(compileGuestbookLogged(nil)), Render(compileGuestbook()); got != want {
		t.Fatalf("a nil DropLog changes the table:\n%s\nwant\n%s", got, want)
	}
	// Logging no pod and no anti-spoofing drop adds only the (unused) per-pair limit sets.
	quiet := Render(compileGuestbookLogged(&DropLog{Group: 7, PairRate: 5, Rate: 50}))
	if strings.Contains(quiet, "log prefix") {
		t.Fatalf("a DropLog naming nothing logs:\n%s", quiet)
	}
}

// TestDropLogKeepsEveryVerdict: logging rules have no verdict, so every packet of the guestbook
// trace ends as it does without them.
func TestDropLogKeepsEveryVerdict(t *testing.T) {
	plain, logged := compileGuestbook(), compileGuestbookLogged(guestbookDropLog())
	var packets []Packet
	for _, iif := range []string{guestbkIface, redisIface, fabricIface} {
		for _, src := range []string{guestbookIP, redisIP, remoteGBIP, busyboxIP, externalDNS} {
			for _, dst := range []string{guestbookIP, redisIP, remoteGBIP, busyboxIP, externalDNS} {
				for _, port := range []uint16{53, 3000, 6379} {
					packets = append(packets, Packet{Hook: HookForward, Iifname: iif, Src: addr(src), Dst: addr(dst), Proto: ProtoTCP, DstPort: port})
				}
			}
		}
	}
	for _, p := range packets {
		if got, want := Trace(logged, p).Verdict, Trace(plain, p).Verdict; got != want {
			t.Errorf("%+v: %v with drop logging, %v without", p, got, want)
		}
	}
}

// TestDropLogRulesComeRightBeforeTheirDrop: a logged pod chain ends with one log rule per family of
// the pod, then the default deny; a pod that is not logged keeps its chain as it was.
func TestDropLogRulesComeRightBeforeTheirDrop(t *testing.T) {
	rs := compileGuestbookLogged(guestbookDropLog())
	chains := map[string]Chain{}
	for _, c := range rs.Chains {
		chains[c.Name] = c
	}
	redis := chains["in_default_redis-master"].Rules
	n := len(redis)
	if n < 3 || redis[n-1].Verdict.Kind != Drop {
		t.Fatalf("in_default_redis-master = %v, want log rules then the drop", redis)
	}
	for i, f := range []Family{IPv4, IPv6} {
		r := redis[n-3+i]
		if r.Log == nil || r.Verdict.Kind != VerdictNone || r.Log.Prefix != LogPrefix+"in_default_redis-master" || r.Log.Group != 7 {
			t.Errorf("rule %d of in_default_redis-master = %s, want a log rule of prefix np/in_default_redis-master", n-3+i, RenderRule(r))
		}
		if m, ok := r.Matches[0].(PairRateLimit); !ok || m.Family != f {
			t.Errorf("rule %s: want a per-pair limit of family %d first", RenderRule(r), f)
		}
	}
	for _, r := range chains["in_default_guestbook-1"].Rules {
		if r.Log != nil {
			t.Errorf("guestbook-1 is not logged, yet its chain has %s", RenderRule(r))
		}
	}
	var spoofLogs int
	for i, r := range chains[chainSpoofing].Rules {
		if r.Log == nil {
			continue
		}
		spoofLogs++
		next := chains[chainSpoofing].Rules[i+1]
		if next.Verdict.Kind != Drop && next.Log == nil {
			t.Errorf("anti-spoofing log rule %s is not followed by a drop or another log rule", RenderRule(r))
		}
	}
	if spoofLogs != 4 {
		t.Errorf("%d anti-spoofing log rules, want 4 (pod interface v4 and v6, foreign interface v4, v6)", spoofLogs)
	}
}

func TestLogPrefixesFitAndParseBack(t *testing.T) {
	long := strings.Repeat("n", 63)
	pod := makeLocalPod(long, strings.Repeat("p", 253), withIPs("198.18.0.50"), isolatedIngress("p"))
	m := emptyModel()
	m.LocalPods = []selectors.LocalPod{pod}
	dl := &DropLog{Group: 1, PairRate: 1, Rate: 1, Pods: map[string]bool{pod.Key(): true}, AntiSpoof: true}
	rs := Compile(CompileInput{Table: "t", Model: m, DropLog: dl, Interfaces: map[netip.Addr]string{addr("198.18.0.50"): "veth0"}})
	var prefixes int
	for _, c := range rs.Chains {
		for _, r := range c.Rules {
			if r.Log == nil {
				continue
			}
			prefixes++
			if len(r.Log.Prefix) > MaxLogPrefixLen {
				t.Errorf("prefix %q is longer than %d bytes", r.Log.Prefix, MaxLogPrefixLen)
			}
			p, ok := ParseLogPrefix(r.Log.Prefix)
			if !ok {
				t.Errorf("prefix %q does not parse", r.Log.Prefix)
			}
			if !p.AntiSpoof && p.Chain != c.Name {
				t.Errorf("prefix %q in chain %s names chain %q", r.Log.Prefix, c.Name, p.Chain)
			}
		}
	}
	if prefixes == 0 {
		t.Fatal("no log rule compiled")
	}
	for _, bad := range []string{"", "np/", "np/pi_x", "other/in_x", "in_x"} {
		if _, ok := ParseLogPrefix(bad); ok {
			t.Errorf("ParseLogPrefix(%q) accepted it", bad)
		}
	}
}

// TestDropLogTurnsOnAndOffIncrementally: a Compiler that turns logging on and off, or changes which
// pods log, compiles what a full compile does, and Diff takes the table there.
func TestDropLogTurnsOnAndOffIncrementally(t *testing.T) {
	var cc Compiler
	f := NewFake("nftpolicy")
	a := NewApplier(f)
	for i, dl := range []*DropLog{nil, guestbookDropLog(), guestbookLogAll(), {Group: 7, PairRate: 5, Rate: 50}, guestbookLogAll(), nil} {
		in := CompileInput{Table: "nftpolicy", Model: guestbookModel(), Interfaces: guestbookInterfaces(), DropLog: dl, Changes: selectors.Changes{}}
		rs, changed := cc.Compile(in)
		if i == 2 && (changed.Full || !changed.Chains) {
			// Only which pods log changed: the chains are compiled again, the rest is compared by name.
			t.Errorf("step %d: changes %+v, want the chains only", i, changed)
		}
		if got, want := Render(rs), Render(compileGuestbookLogged(dl)); got != want {
			t.Fatalf("step %d: incremental compile\n%s\nwant\n%s", i, got, want)
		}
		if _, err := a.Apply(rs, changed); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if got, want := Render(f.Ruleset()), Render(rs); got != want {
			t.Fatalf("step %d: the fake holds\n%s\nwant\n%s", i, got, want)
		}
	}
}
