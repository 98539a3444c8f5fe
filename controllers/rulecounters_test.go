package controllers

import (
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/nftpolicy/nftpolicy/nft"
	"github.com/nftpolicy/nftpolicy/nft/nfttest"
)

// fakeCounters answers Counters with fixed values, or an error.
type fakeCounters struct {
	values map[string]nft.CounterValue
	err    error
}

func (f fakeCounters) Counters(string) (map[string]nft.CounterValue, error) {
	return f.values, f.err
}

// committedGuestbook commits the guestbook ruleset through a fake kernel and returns the applier.
func committedGuestbook(t *testing.T, perPod bool) *nft.Applier {
	t.Helper()
	a := nft.NewApplier(nft.NewFake("nftpolicy"))
	rs := nft.Compile(nft.CompileInput{Table: "nftpolicy", Model: nfttest.GuestbookModel(), PodDenyCounters: perPod})
	if _, err := a.Apply(rs, nft.FullChanges()); err != nil {
		t.Fatal(err)
	}
	return a
}

func TestRuleCounterCollectorMapsCountersToLabels(t *testing.T) {
	c := &RuleCounterCollector{Table: "nftpolicy", Applier: committedGuestbook(t, false), Reader: fakeCounters{values: map[string]nft.CounterValue{
		"allow-in_default_redis-policy_0":     {Packets: 7, Bytes: 420},
		"allow-eg_default_guestbook-egress_1": {Packets: 2, Bytes: 100},
		"deny-in_default":                     {Packets: 3, Bytes: 180},
		"foreign":                             {Packets: 99}, // not ours: skipped
	}}}
	want := `
# HELP nftpolicy_default_deny_connections_total ` + defaultDenyConnectionsHelp + `
# TYPE nftpolicy_default_deny_connections_total counter
nftpolicy_default_deny_connections_total{direction="ingress",namespace="default"} 3
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "nftpolicy_default_deny_connections_total"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(c, "nftpolicy_policy_rule_connections_total"); n != 2 {
		t.Errorf("%d policy rule series, want 2", n)
	}
	if v := testutil.ToFloat64(onlyRule(c, "redis-policy")); v != 7 {
		t.Errorf("redis-policy ingress[0] = %v, want 7", v)
	}
}

// onlyRule is a collector of the one series of policy.
func onlyRule(c *RuleCounterCollector, policy string) *RuleCounterCollector {
	values, _ := c.Reader.Counters(c.Table)
	kept := map[string]nft.CounterValue{}
	for name, v := range values {
		if counter, ok := c.Applier.Committed().CounterByName(name); ok && counter.Labels.Policy == policy {
			kept[name] = v
		}
	}
	out := *c
	out.Reader = fakeCounters{values: kept}
	return &out
}

func TestRuleCounterCollectorPodLabel(t *testing.T) {
	c := &RuleCounterCollector{Table: "nftpolicy", Applier: committedGuestbook(t, true), PodDenyCounters: true,
		Reader: fakeCounters{values: map[string]nft.CounterValue{"deny-in_default_redis-master": {Packets: 1}}}}
	if err := testutil.CollectAndCompare(c, strings.NewReader(`
# HELP nftpolicy_default_deny_connections_total `+podDefaultDenyConnectionsHelp+`
# TYPE nftpolicy_default_deny_connections_total counter
nftpolicy_default_deny_connections_total{direction="ingress",namespace="default",pod="redis-master"} 1
`), "nftpolicy_default_deny_connections_total"); err != nil {
		t.Error(err)
	}
}

func TestRuleCounterCollectorReportsNothingUnknown(t *testing.T) {
	unknown := &RuleCounterCollector{Table: "nftpolicy", Applier: nft.NewApplier(nft.NewFake("nftpolicy")),
		Reader: fakeCounters{values: map[string]nft.CounterValue{"deny-in_default": {Packets: 1}}}}
	if n := testutil.CollectAndCount(unknown); n != 0 {
		t.Errorf("%d series while nothing is committed, want none", n)
	}
	failing := &RuleCounterCollector{Table: "nftpolicy", Applier: committedGuestbook(t, false), Reader: fakeCounters{err: errors.New("netlink down")}}
	if err := testutil.CollectAndCompare(failing, strings.NewReader("")); err == nil || !strings.Contains(err.Error(), "netlink down") {
		t.Errorf("a failed dump: %v, want the scrape to fail with the error", err)
	}
}

func TestRuleCounterCollectorAuditVerdicts(t *testing.T) {
	a := nft.NewApplier(nft.NewFake("nftpolicy"))
	if _, err := a.Apply(nft.Compile(nft.CompileInput{Table: "nftpolicy", Model: nfttest.GuestbookAuditModel()}), nft.FullChanges()); err != nil {
		t.Fatal(err)
	}
	c := &RuleCounterCollector{Table: "nftpolicy", Applier: a, Reader: fakeCounters{values: map[string]nft.CounterValue{
		"audit-allow-in_default_redis-trial":       {Packets: 4},
		"audit-drop-eg_default_redis-egress-trial": {Packets: 9},
		"allow-in_default_redis-policy_0":          {Packets: 1},
	}}}
	if err := testutil.CollectAndCompare(c, strings.NewReader(`
# HELP nftpolicy_audit_connections_total `+auditConnectionsHelp+`
# TYPE nftpolicy_audit_connections_total counter
nftpolicy_audit_connections_total{direction="egress",namespace="default",policy="redis-egress-trial",verdict="would-drop"} 9
nftpolicy_audit_connections_total{direction="ingress",namespace="default",policy="redis-trial",verdict="would-allow"} 4
`), "nftpolicy_audit_connections_total"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(c, "nftpolicy_policy_rule_connections_total"); n != 1 {
		t.Errorf("%d policy rule series, want 1: audit counters are not policy rules", n)
	}
}
