package e2e

import (
	"context"
	"fmt"
	"io"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/nftpolicy/nftpolicy/lab"
)

// describeIncrementalCheck runs after every other spec of a lab: its agents run with
// --verify-incremental, so each sync that read only the changed objects was also compared with a full
// resolve of the cache, and a difference was counted. None may have been found.
func describeIncrementalCheck(env *labEnv) {
	It("found every incremental sync equal to a full resolve", Label("verify-incremental"), func(ctx SpecContext) {
		for _, a := range env.lab.State().Agents {
			counters, err := scrapeCounters(ctx, a)
			Expect(err).NotTo(HaveOccurred(), "agent of %s", a.Node)
			mismatches, ok := counters[`nftpolicy_incremental_mismatches_total`]
			Expect(ok).To(BeTrue(), "agent of %s exports no nftpolicy_incremental_mismatches_total", a.Node)
			Expect(mismatches).To(BeZero(), "agent of %s: incremental syncs that differed from a full resolve (see its log)", a.Node)
			AddReportEntry(fmt.Sprintf("%s lab, agent of %s", env.family, a.Node),
				fmt.Sprintf("syncs reading only changed objects: %.0f, reading the whole cache: %.0f",
					counters[`nftpolicy_cache_reads_total{scope="changed"}`], counters[`nftpolicy_cache_reads_total{scope="all"}`]))
		}
	})
}

// scrapeCounters reads the counters of an agent's metrics endpoint, keyed by name and labels as the
// text format writes them.
func scrapeCounters(ctx context.Context, agent lab.AgentState) (map[string]float64, error) {
	out := map[string]float64{}
	err := lab.ScrapeMetrics(ctx, agent, func(r io.Reader) error {
		parser := expfmt.NewTextParser(model.UTF8Validation)
		families, err := parser.TextToMetricFamilies(r)
		if err != nil {
			return fmt.Errorf("parsing the metrics of the agent of %s: %w", agent.Node, err)
		}
		for name, f := range families {
			for _, m := range f.GetMetric() {
				if m.GetCounter() == nil {
					continue
				}
				key := name
				for _, l := range m.GetLabel() {
					key += fmt.Sprintf("{%s=%q}", l.GetName(), l.GetValue())
				}
				out[key] = m.GetCounter().GetValue()
			}
		}
		return nil
	})
	return out, err
}
