package lab

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

// ScrapeMetrics fetches the metrics endpoint of an agent at addr (host:port, as AgentState.MetricsAddr
// holds it) and hands the body, in the Prometheus text format, to read.
func ScrapeMetrics(ctx context.Context, addr string, read func(io.Reader) error) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("scraping the agent's metrics at %s: %w", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("scraping the agent's metrics at %s: %s", addr, resp.Status)
	}
	return read(resp.Body)
}
