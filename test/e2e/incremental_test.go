package e2e

import (
	"context"
	"fmt"
	"net/http"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// describeIncrementalCheck runs after every other spec of a lab: its agents run with
// --verify-incremental, so each sync that read only the changed objects was also compared with a full
// resolve of the cache, and a difference was counted. None may have been found.
func describeIncrementalCheck(env *labEnv) {
	It("found every incremental sync equal to a full resolve", Label("verify-incremental"), func(ctx SpecContext) {
		for _, a := range env.lab.State().Agents {
			counters, err := scrapeCounters(ctx, a.MetricsAddr)
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
func scrapeCounters(ctx context.Context, addr string) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scraping %s: %w", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scraping %s: %s", addr, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("parsing the metrics of %s: %w", addr, err)
	}
	out := map[string]float64{}
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
	return out, nil
}
