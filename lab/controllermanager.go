package lab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

const kubeControllerManager = "kube-controller-manager"

// labControllers are the controllers of kube-controller-manager the lab runs: the EndpointSlices of
// Services, from their selectors and mirrored from custom Endpoints; each namespace's default
// ServiceAccount, its token Secrets where asked for, and the kube-root-ca.crt ConfigMap (the upstream
// e2e framework waits for it in each new namespace); the removal of a deleted namespace's contents;
// and StatefulSets.
var labControllers = []string{
	"endpointslice-controller", "endpointslice-mirroring-controller",
	"serviceaccount-controller", "serviceaccount-token-controller", "root-ca-certificate-publisher-controller",
	"namespace-controller", "statefulset-controller",
}

// controllerManagerReadyTimeout bounds the wait for kube-controller-manager's first work.
const controllerManagerReadyTimeout = 60 * time.Second

// startControllerManager runs kube-controller-manager on the lab's admin kubeconfig, without leader
// election and without serving (nothing scrapes it), and waits until its ServiceAccount controller
// has created the default namespace's ServiceAccount: its caches are synced then.
func (l *Lab) startControllerManager(ctx context.Context) error {
	// Unused while it does not serve, but inside the state directory: processesOf finds the
	// process by it.
	certDir := filepath.Join(l.state.Dir, "controller-manager")
	if err := os.MkdirAll(certDir, 0o700); err != nil {
		return err
	}
	logPath, err := l.logPath(kubeControllerManager + ".log")
	if err != nil {
		return err
	}
	argv := []string{
		filepath.Join(l.assets, kubeControllerManager),
		"--kubeconfig=" + l.state.Kubeconfig,
		"--controllers=" + strings.Join(labControllers, ","),
		"--leader-elect=false",
		// The token controller signs with the API server's ServiceAccount key.
		"--service-account-private-key-file=" + filepath.Join(l.plane.env.ControlPlane.GetAPIServer().CertDir, "sa-signer.key"),
		"--secure-port=0",
		"--cert-dir=" + certDir,
		"--v=2",
	}
	c, err := startChild(kubeControllerManager, logPath, argv)
	if err != nil {
		return err
	}
	l.plane.controllerManager = c
	l.state.ControllerManager = &ChildState{Process: c.process(), Log: logPath}
	if err := l.state.write(); err != nil {
		return err
	}
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, controllerManagerReadyTimeout, true, func(ctx context.Context) (bool, error) {
		select {
		case <-c.exited:
			return false, c.exitedError()
		default:
		}
		var sa corev1.ServiceAccount
		err := l.client.Get(ctx, types.NamespacedName{Namespace: corev1.NamespaceDefault, Name: "default"}, &sa)
		return err == nil, client.IgnoreNotFound(err)
	})
	if err != nil {
		return fmt.Errorf("waiting for kube-controller-manager to create the default ServiceAccount: %w; see %s", err, logPath)
	}
	return nil
}

// logPath is the path of a log file in the state directory's logs/, which it creates.
func (l *Lab) logPath(name string) (string, error) {
	dir := filepath.Join(l.state.Dir, "logs")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	return filepath.Join(dir, name), nil
}
