package kubelet

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// PKI is the lab's kubelet certificates: one CA that signs the kubelets' serving certificate (for
// 127.0.0.1, ::1 and localhost, shared by every node of the lab) and the API server's kubelet
// client certificate. The API server takes the files:
//
//	--kubelet-certificate-authority=CAFile --kubelet-client-certificate=ClientCertFile
//	--kubelet-client-key=ClientKeyFile
type PKI struct {
	// CAFile verifies the kubelets' serving certificate and is the kubelets' client CA.
	CAFile string
	// ClientCertFile and ClientKeyFile are the API server's kubelet client certificate and key.
	ClientCertFile, ClientKeyFile string

	serving tls.Certificate
	caPool  *x509.CertPool
}

// ClientCommonName is the subject of the API server's kubelet client certificate, as kubeadm names it.
const ClientCommonName = "kube-apiserver-kubelet-client"

const certValidity = 7 * 24 * time.Hour

// NewPKI creates a CA, a serving certificate and the API server's client certificate, writing
// the CA and the client certificate and key as PEM files into dir.
func NewPKI(dir string) (*PKI, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating %s: %w", dir, err)
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	caTmpl := template(pkix.Name{CommonName: "nftpolicy-lab-kubelet-ca"})
	caTmpl.IsCA = true
	caTmpl.BasicConstraintsValid = true
	caTmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("creating the kubelet CA: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	servingTmpl := template(pkix.Name{CommonName: "nftpolicy-lab-kubelet"})
	servingTmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	servingTmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	servingTmpl.DNSNames = []string{"localhost"}
	servingDER, servingKey, err := issue(servingTmpl, ca, caKey)
	if err != nil {
		return nil, fmt.Errorf("creating the kubelet serving certificate: %w", err)
	}
	clientTmpl := template(pkix.Name{CommonName: ClientCommonName, Organization: []string{"system:masters"}})
	clientTmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	clientDER, clientKey, err := issue(clientTmpl, ca, caKey)
	if err != nil {
		return nil, fmt.Errorf("creating the kubelet client certificate: %w", err)
	}
	p := &PKI{
		CAFile:         filepath.Join(dir, "kubelet-ca.crt"),
		ClientCertFile: filepath.Join(dir, "apiserver-kubelet-client.crt"),
		ClientKeyFile:  filepath.Join(dir, "apiserver-kubelet-client.key"),
		caPool:         x509.NewCertPool(),
	}
	p.caPool.AddCert(ca)
	p.serving = tls.Certificate{Certificate: [][]byte{servingDER, caDER}, PrivateKey: servingKey}
	clientKeyDER, err := x509.MarshalECPrivateKey(clientKey)
	if err != nil {
		return nil, err
	}
	for file, block := range map[string]*pem.Block{
		p.CAFile:         {Type: "CERTIFICATE", Bytes: caDER},
		p.ClientCertFile: {Type: "CERTIFICATE", Bytes: clientDER},
		p.ClientKeyFile:  {Type: "EC PRIVATE KEY", Bytes: clientKeyDER},
	} {
		if err := os.WriteFile(file, pem.EncodeToMemory(block), 0o600); err != nil {
			return nil, fmt.Errorf("writing %s: %w", file, err)
		}
	}
	return p, nil
}

// ServerTLSConfig serves the kubelet API to clients with a certificate signed by the CA only.
func (p *PKI) ServerTLSConfig() *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{p.serving},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    p.caPool,
		MinVersion:   tls.VersionTLS12,
	}
}

func template(subject pkix.Name) *x509.Certificate {
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	now := time.Now()
	return &x509.Certificate{
		SerialNumber: serial,
		Subject:      subject,
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(certValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
}

// issue signs tmpl with the CA for a new key.
func issue(tmpl, ca *x509.Certificate, caKey *ecdsa.PrivateKey) ([]byte, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	return der, key, err
}
