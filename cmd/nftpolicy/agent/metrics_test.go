package agent

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/go-logr/logr"
)

func TestMetricsServerOptions(t *testing.T) {
	secure, err := metricsServerOptions(context.Background(), Options{MetricsAddr: ":9474", MetricsSecure: true}, logr.Discard())
	if err != nil {
		t.Fatal(err)
	}
	if !secure.SecureServing || secure.FilterProvider == nil || len(secure.TLSOpts) == 0 {
		t.Errorf("secure metrics: %+v, want HTTPS behind authentication and authorization", secure)
	}
	plain, err := metricsServerOptions(context.Background(), Options{MetricsAddr: ":9474"}, logr.Discard())
	if err != nil || plain.SecureServing || plain.FilterProvider != nil {
		t.Errorf("plain metrics: %+v, %v", plain, err)
	}

	dir := t.TempDir()
	if _, err := metricsServerOptions(context.Background(), Options{MetricsSecure: true, MetricsCertPath: dir}, logr.Discard()); err == nil {
		t.Error("a certificate directory without tls.crt and tls.key was accepted")
	}
	for _, name := range []string{"tls.crt", "tls.key"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	withCert, err := metricsServerOptions(context.Background(), Options{MetricsSecure: true, MetricsCertPath: dir}, logr.Discard())
	if err != nil || withCert.CertDir != dir || withCert.CertName != "tls.crt" || withCert.KeyName != "tls.key" {
		t.Errorf("with a certificate: %+v, %v", withCert, err)
	}
	if _, err := metricsServerOptions(context.Background(), Options{MetricsCertPath: dir}, logr.Discard()); err == nil {
		t.Error("a certificate for plain HTTP metrics was accepted")
	}
}
