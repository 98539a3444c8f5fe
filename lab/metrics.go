package lab

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"time"
)

// metricsClient talks to the agents' secure metrics endpoints. They serve a self-signed certificate
// on the loopback, made when each agent starts, so the client does not verify it: what the lab
// checks is that the agent authenticates and authorizes the caller, with the bearer token.
var metricsClient = &http.Client{Transport: &http.Transport{
	TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // a loopback address and a self-signed certificate, see above
}}

// ScrapeMetrics fetches the metrics endpoint of an agent (over HTTPS, with the agent's
// MetricsToken) and hands the body, in the Prometheus text format, to read.
func ScrapeMetrics(ctx context.Context, agent AgentState, read func(io.Reader) error) error {
	return scrapeMetricsAs(ctx, agent.MetricsAddr, agent.MetricsToken, read)
}

// scrapeMetricsAs scrapes the agent's metrics at addr (host:port) with a bearer token ("" for none).
func scrapeMetricsAs(ctx context.Context, addr, token string, read func(io.Reader) error) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+"/metrics", nil)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := metricsClient.Do(req)
	if err != nil {
		return fmt.Errorf("scraping the agent's metrics at %s: %w", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("scraping the agent's metrics at %s: %s", addr, resp.Status)
	}
	return read(resp.Body)
}
