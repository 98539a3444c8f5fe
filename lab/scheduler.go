package lab

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

const kubeScheduler = "kube-scheduler"

// schedulerReadyTimeout bounds the wait for kube-scheduler to serve its health endpoint.
const schedulerReadyTimeout = 60 * time.Second

// startScheduler runs kube-scheduler on the lab's admin kubeconfig, without leader election, so that
// pods created without a node (the upstream e2e suite's) are placed on the lab's nodes. It serves
// its health check on a free loopback port, and the lab waits until it answers.
func (l *Lab) startScheduler(ctx context.Context) error {
	logPath, err := l.logPath(kubeScheduler + ".log")
	if err != nil {
		return err
	}
	addr, err := freeLoopbackAddr()
	if err != nil {
		return err
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	certDir := filepath.Join(l.state.Dir, kubeScheduler)
	argv := []string{
		filepath.Join(l.assets, kubeScheduler),
		"--kubeconfig=" + l.state.Kubeconfig,
		"--authentication-kubeconfig=" + l.state.Kubeconfig,
		"--authorization-kubeconfig=" + l.state.Kubeconfig,
		"--leader-elect=false",
		"--bind-address=127.0.0.1",
		"--secure-port=" + port,
		"--cert-dir=" + certDir,
		"--v=2",
	}
	c, err := startChild(kubeScheduler, logPath, argv)
	if err != nil {
		return err
	}
	l.plane.scheduler = c
	l.state.Scheduler = &ChildState{Process: c.process(), Log: logPath}
	if err := l.state.write(); err != nil {
		return err
	}
	healthz := "https://" + addr + "/healthz"
	// kube-scheduler serves with the self-signed certificate it writes into its cert dir.
	certFile := filepath.Join(certDir, kubeScheduler+".crt")
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, schedulerReadyTimeout, true, func(ctx context.Context) (bool, error) {
		select {
		case <-c.exited:
			return false, c.exitedError()
		default:
		}
		return healthy(ctx, healthz, certFile), nil
	})
	if err != nil {
		return fmt.Errorf("waiting for kube-scheduler to serve %s: %w; see %s", healthz, err, logPath)
	}
	return nil
}

// healthy says whether url answers 200, trusting only the certificate in certFile (absent until the
// server has written it).
func healthy(ctx context.Context, url, certFile string) bool {
	pem, err := os.ReadFile(certFile)
	if err != nil {
		return false
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return false
	}
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, DisableKeepAlives: true,
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := hc.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}
