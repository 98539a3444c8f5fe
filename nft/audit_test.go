package nft

import (
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/util/sets"

	"github.com/nftpolicy/nftpolicy/nft/nfttest"
	"github.com/nftpolicy/nftpolicy/selectors"
)

func compileGuestbookAudit(dl *DropLog) *Ruleset {
	return Compile(CompileInput{Table: "nftpolicy", Model: nfttest.GuestbookAuditModel(), Interfaces: guestbookInterfaces(), DropLog: dl})
}

func TestCompileGuestbookAuditGolden(t *testing.T) {
	checkGolden(t, "guestbook-audit.nft", Render(compileGuestbookAudit(guestbookDropLog())))
	checkGolden(t, "guestbook-audit-nolog.nft", Render(compileGuestbookAudit(nil)))
}

// guestbookPackets are new connections between every pair of the guestbook's addresses, on the
// ports its policies name and one they do not.
func guestbookPackets() []Packet {
	var packets []Packet
	for _, iif := range []string{guestbkIface, redisIface, fabricIface} {
		for _, src := range []string{guestbookIP, redisIP, remoteGBIP, busyboxIP, externalDNS} {
			for _, dst := range []string{guestbookIP, redisIP, remoteGBIP, busyboxIP, externalDNS} {
				for _, port := range []uint16{53, 3000, 6379, 9999} {
					packets = append(packets, Packet{Hook: HookForward, Iifname: iif, Src: addr(src), Dst: addr(dst), Proto: ProtoTCP, DstPort: port})
				}
			}
		}
	}
	return packets
}

// TestAuditKeepsEveryEnforcedVerdict: audited policies change no verdict, logging on or off; the
// enforced verdict is the one of the policies without the audited ones.
func TestAuditKeepsEveryEnforcedVerdict(t *testing.T) {
	for _, dl := range []*DropLog{nil, guestbookDropLog()} {
		plain, audited := compileGuestbookLogged(dl), compileGuestbookAudit(dl)
		for _, p := range guestbookPackets() {
			if got, want := Trace(audited, p).Verdict, Trace(plain, p).Verdict; got != want {
				t.Errorf("logging %v, %v: %v with audited policies, %v without", dl != nil, p, got, want)
			}
		}
	}
}

// countersOnTheWay lists the counters a packet updates.
func countersOnTheWay(rs *Ruleset, p Packet) []string {
	var out []string
	for _, s := range Trace(rs, p).Steps {
		if s.Counter != "" {
			out = append(out, s.Counter)
		}
	}
	return out
}

// TestAuditCountsWhatItWouldChange: busybox may not reach redis, which redis-trial would allow; redis
// may reach anything, which redis-egress-trial would limit to guestbook pods on TCP 3000.
func TestAuditCountsWhatItWouldChange(t *testing.T) {
	rs := compileGuestbookAudit(guestbookDropLog())
	pkt := func(iif, src, dst string, port uint16) Packet {
		return Packet{Hook: HookForward, Iifname: iif, Src: addr(src), Dst: addr(dst), Proto: ProtoTCP, DstPort: port}
	}
	for _, c := range []struct {
		name     string
		p        Packet
		verdict  VerdictKind
		counters []string
		logs     []string // the prefixes of the log rules on the way
	}{
		{"would allow busybox to redis", pkt(fabricIface, busyboxIP, redisIP, 6379), Drop,
			[]string{"audit-allow-in_default_redis-trial", "deny-in_default"},
			// The drop is logged too: redis-master's namespace logs its drops.
			[]string{"np/audit-allow-in_default_redis-trial", "np/in_default_redis-master"}},
		{"would allow over IPv6", Packet{Hook: HookForward, Iifname: fabricIface, Src: addr("fd18:1::30"), Dst: addr(redisIPv6), Proto: ProtoTCP, DstPort: 6379}, Drop,
			[]string{"audit-allow-in_default_redis-trial", "deny-in_default"},
			[]string{"np/audit-allow-in_default_redis-trial", "np/in_default_redis-master"}},
		{"denied either way", pkt(fabricIface, busyboxIP, redisIP, 9999), Drop, []string{"deny-in_default"}, []string{"np/in_default_redis-master"}},
		{"allowed either way", pkt(guestbkIface, guestbookIP, redisIP, 6379), Accept, []string{"allow-eg_default_guestbook-egress_0", "allow-in_default_redis-policy_0"}, nil},
		{"would drop redis to external", pkt(redisIface, redisIP, externalDNS, 53), Accept,
			[]string{"audit-drop-eg_default_redis-egress-trial"}, []string{"np/audit:eg_default_redis-master"}},
		// Not isolated, so allowed; the audited rule's counter counts what it admits.
		{"redis to guestbook 3000 is admitted by the audited policy too", pkt(redisIface, redisIP, remoteGBIP, 3000), Accept,
			[]string{"allow-eg_default_redis-egress-trial_0"}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			res := Trace(rs, c.p)
			if res.Verdict != c.verdict {
				t.Errorf("verdict %v, want %v", res.Verdict, c.verdict)
			}
			if got := countersOnTheWay(rs, c.p); !slices.Equal(got, c.counters) {
				t.Errorf("counters %q, want %q", got, c.counters)
			}
			var logs []string
			for _, s := range res.Steps {
				if r := ruleAt(rs, s.Chain, s.Index); r != nil && r.Log != nil {
					logs = append(logs, r.Log.Prefix)
				}
			}
			if !slices.Equal(logs, c.logs) {
				t.Errorf("log rules on the way %q, want %q", logs, c.logs)
			}
		})
	}
}

func ruleAt(rs *Ruleset, chain string, i int) *Rule {
	for _, c := range rs.Chains {
		if c.Name == chain && i >= 0 && i < len(c.Rules) {
			return &c.Rules[i]
		}
	}
	return nil
}

func TestAuditPrefixesAndCounters(t *testing.T) {
	rs := compileGuestbookAudit(guestbookDropLog())
	for _, c := range []struct {
		prefix string
		want   DropPoint
	}{
		{"np/audit:eg_default_redis-master", DropPoint{Chain: "eg_default_redis-master", WouldDrop: true}},
		{"np/audit-allow-in_default_redis-trial", DropPoint{Counter: "audit-allow-in_default_redis-trial"}},
		{"np/audit:spoof", DropPoint{}},
	} {
		got, ok := ParseLogPrefix(c.prefix)
		if ok != (c.want != DropPoint{}) || got != c.want {
			t.Errorf("ParseLogPrefix(%q) = %+v, %v; want %+v", c.prefix, got, ok, c.want)
		}
	}
	for name, want := range map[string]CounterLabels{
		"audit-allow-in_default_redis-trial":       {Namespace: "default", Direction: "ingress", Policy: "redis-trial", Audit: WouldAllow},
		"audit-drop-eg_default_redis-egress-trial": {Namespace: "default", Direction: "egress", Policy: "redis-egress-trial", Audit: WouldDrop},
	} {
		c, ok := rs.CounterByName(name)
		if !ok || c.Labels != want || c.Labels.PolicyRule() || c.Labels.DefaultDeny() {
			t.Errorf("counter %s = %+v, %v; want %+v", name, c.Labels, ok, want)
		}
	}
}

// guestbookEnforced is GuestbookAuditModel with both audited policies enforced.
func guestbookEnforced() *selectors.Model {
	m := nfttest.GuestbookAuditModel()
	redis := &m.LocalPods[1]
	redis.Ingress.Policies = append(redis.Ingress.Policies, redis.AuditIngress.Policies...)
	redis.Ingress.Rules = append(redis.Ingress.Rules, redis.AuditIngress.Rules...)
	redis.Egress, redis.AuditIngress, redis.AuditEgress = redis.AuditEgress, nil, nil
	return m
}

// TestAuditCompilesIncrementally: auditing policies, enforcing them and auditing them again, logging
// on and off, compiles incrementally to what a full compile makes, and applies.
func TestAuditCompilesIncrementally(t *testing.T) {
	var cc Compiler
	f := NewFake("nftpolicy")
	a := NewApplier(f)
	for i, step := range []struct {
		model func() *selectors.Model
		dl    *DropLog
	}{
		{guestbookModel, nil},
		{nfttest.GuestbookAuditModel, nil},
		{guestbookEnforced, nil},
		{nfttest.GuestbookAuditModel, nil},
		{nfttest.GuestbookAuditModel, guestbookDropLog()},
		{guestbookEnforced, guestbookDropLog()},
		{nfttest.GuestbookAuditModel, guestbookLogAll()},
		{guestbookModel, guestbookLogAll()},
	} {
		in := CompileInput{Table: "nftpolicy", Model: step.model(), Interfaces: guestbookInterfaces(), DropLog: step.dl,
			Changes: selectors.Changes{LocalPods: sets.New("default/redis-master")}}
		rs, changed := cc.Compile(in)
		full := Compile(CompileInput{Table: "nftpolicy", Model: step.model(), Interfaces: guestbookInterfaces(), DropLog: step.dl})
		if got, want := Render(rs), Render(full); got != want {
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
