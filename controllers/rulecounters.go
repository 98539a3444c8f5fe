package controllers

import (
	"context"
	"fmt"
	"strconv"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/nftpolicy/nftpolicy/nft"
)

// CounterReader reads every named counter of a table in one dump: kernel.NetlinkBackend.
type CounterReader interface {
	Counters(table string) (map[string]nft.CounterValue, error)
}

// The metrics made of the table's named counters (see nft.Counter). Policy rules and default denies
// are reached only by packets that conntrack does not know yet (an established or related packet
// is accepted before any policy), so they count new connections: their first packets, and the
// retransmissions of a first packet that was not answered yet (a SYN sent again, or every packet of
// a UDP flow that got no reply).
const (
	policyRuleConnectionsHelp = "New connections (first packets, retransmitted SYNs included) accepted by a NetworkPolicy rule: " +
		"direction ingress or egress, rule the index in the policy's list for that direction. " + countersResetHelp
	defaultDenyConnectionsHelp = "New connections (first packets, retransmitted SYNs included) to or from isolated pods of a namespace " +
		"that no rule allowed and the default deny dropped. " + countersResetHelp
	podDefaultDenyConnectionsHelp = "New connections (first packets, retransmitted SYNs included) to or from an isolated pod " +
		"that no rule allowed and the default deny dropped. " + countersResetHelp
	auditConnectionsHelp = "New connections (first packets, retransmitted SYNs included) that an audited NetworkPolicy " +
		"(annotation nftpolicy.io/mode: audit) would change: verdict would-drop (allowed now, the policy would deny it) or " +
		"would-allow (denied now, a rule of the policy would admit it). " + countersResetHelp
	countersResetHelp = "Reset when the agent replaces its whole table (on start, or to repair drift)."
)

var (
	policyRuleConnectionsDesc = prometheus.NewDesc("nftpolicy_policy_rule_connections_total", policyRuleConnectionsHelp,
		[]string{"namespace", "policy", "direction", "rule"}, nil)
	defaultDenyConnectionsDesc = prometheus.NewDesc("nftpolicy_default_deny_connections_total", defaultDenyConnectionsHelp,
		[]string{"namespace", "direction"}, nil)
	podDefaultDenyConnectionsDesc = prometheus.NewDesc("nftpolicy_default_deny_connections_total", podDefaultDenyConnectionsHelp,
		[]string{"namespace", "direction", "pod"}, nil)
	auditConnectionsDesc = prometheus.NewDesc("nftpolicy_audit_connections_total", auditConnectionsHelp,
		[]string{"namespace", "policy", "direction", "verdict"}, nil)
)

// RuleCounterCollector exports the table's counters as Prometheus metrics. Each scrape reads every
// counter in one netlink dump and maps its name back to labels through the last committed ruleset;
// counters the committed ruleset does not name (none while the kernel's state is unknown) are
// skipped.
type RuleCounterCollector struct {
	Table   string
	Applier *nft.Applier
	Reader  CounterReader
	// PodDenyCounters: the ruleset counts default denies per pod (nft.CompileInput.PodDenyCounters),
	// and nftpolicy_default_deny_connections_total has a pod label.
	PodDenyCounters bool
	Log             logr.Logger
}

var _ prometheus.Collector = (*RuleCounterCollector)(nil)

func (c *RuleCounterCollector) denyDesc() *prometheus.Desc {
	if c.PodDenyCounters {
		return podDefaultDenyConnectionsDesc
	}
	return defaultDenyConnectionsDesc
}

// Describe implements prometheus.Collector.
func (c *RuleCounterCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- policyRuleConnectionsDesc
	ch <- c.denyDesc()
	ch <- auditConnectionsDesc
}

// Collect implements prometheus.Collector.
func (c *RuleCounterCollector) Collect(ch chan<- prometheus.Metric) {
	committed := c.Applier.Committed()
	if committed == nil || len(committed.Counters) == 0 {
		return
	}
	values, err := c.Reader.Counters(c.Table)
	if err != nil {
		c.Log.Error(err, "Reading the rule counters")
		ch <- prometheus.NewInvalidMetric(policyRuleConnectionsDesc, err)
		return
	}
	for name, v := range values {
		counter, ok := committed.CounterByName(name)
		if !ok {
			continue
		}
		l := counter.Labels
		if l.DefaultDeny() {
			labels := []string{l.Namespace, string(l.Direction)}
			if c.PodDenyCounters {
				labels = append(labels, l.Pod)
			}
			ch <- prometheus.MustNewConstMetric(c.denyDesc(), prometheus.CounterValue, float64(v.Packets), labels...)
			continue
		}
		if l.Audit != "" {
			ch <- prometheus.MustNewConstMetric(auditConnectionsDesc, prometheus.CounterValue, float64(v.Packets),
				l.Namespace, l.Policy, string(l.Direction), string(l.Audit))
			continue
		}
		ch <- prometheus.MustNewConstMetric(policyRuleConnectionsDesc, prometheus.CounterValue, float64(v.Packets),
			l.Namespace, l.Policy, string(l.Direction), strconv.Itoa(l.Rule))
	}
}

// Start registers the collector on controller-runtime's registry, which the metrics server serves,
// until ctx is done: a manager runnable, so that an agent restarted in the same process registers
// it again.
func (c *RuleCounterCollector) Start(ctx context.Context) error {
	if err := metrics.Registry.Register(c); err != nil {
		return fmt.Errorf("registering the rule counter metrics: %w", err)
	}
	<-ctx.Done()
	metrics.Registry.Unregister(c)
	return nil
}
