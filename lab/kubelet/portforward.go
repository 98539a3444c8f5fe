package kubelet

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"

	"github.com/vishvananda/netns"
	"k8s.io/cri-streaming/pkg/streaming/portforward"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
)

// servePortForward forwards to a pod this kubelet runs, or to a pod it skips whose SkipAnnotation
// names the network namespace its processes listen in (the lab's own pods and agents).
func (k *Kubelet) servePortForward(w http.ResponseWriter, r *http.Request) {
	ns, name := r.PathValue("namespace"), r.PathValue("pod")
	var fwd *portForwarder
	var uid string
	if pw := k.worker(ns, name); pw != nil {
		fwd, uid = &portForwarder{namespace: ns, name: name, netns: pw.netnsPath}, string(pw.uid)
	} else if pod, ok := k.skippedPod(ns, name); ok && strings.HasPrefix(pod.Annotations[k.cfg.SkipAnnotation], "/") {
		path := pod.Annotations[k.cfg.SkipAnnotation]
		fwd, uid = &portForwarder{namespace: ns, name: name, netns: func() string { return path }}, string(pod.UID)
	} else {
		http.Error(w, fmt.Sprintf("pod %s/%s does not run on node %s", ns, name, k.cfg.NodeName), http.StatusNotFound)
		return
	}
	opts, err := portforward.NewV4Options(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	portforward.ServePortForward(w, r, fwd, name, uid, opts,
		streamIdleTimeout, remotecommand.DefaultStreamCreationTimeout, portforward.SupportedProtocols)
}

// portForwarder connects a stream to a port on the pod's loopback, from inside its namespace.
type portForwarder struct {
	namespace, name string
	netns           func() string // "" while the pod has no sandbox
}

func (p *portForwarder) PortForward(ctx context.Context, _, _ string, port int32, stream io.ReadWriteCloser) error {
	defer stream.Close()
	path := p.netns()
	if path == "" {
		return fmt.Errorf("pod %s/%s has no sandbox", p.namespace, p.name)
	}
	conn, err := dialInNetns(ctx, path, net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port))))
	if err != nil {
		return fmt.Errorf("connecting to port %d of pod %s/%s: %w", port, p.namespace, p.name, err)
	}
	defer conn.Close()
	copied := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(conn, stream); copied <- struct{}{} }()
	go func() { _, _ = io.Copy(stream, conn); copied <- struct{}{} }()
	select {
	case <-copied:
	case <-ctx.Done():
	}
	return nil
}

// dialInNetns opens a TCP connection from inside the network namespace at path: the socket is
// created on a thread switched into the namespace, and keeps the namespace after the thread
// switches back.
func dialInNetns(ctx context.Context, path, addr string) (net.Conn, error) {
	type result struct {
		conn net.Conn
		err  error
	}
	res := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			res <- result{err: err}
			return // the thread stays locked and ends with the goroutine
		}
		defer orig.Close()
		target, err := netns.GetFromPath(path)
		if err != nil {
			runtime.UnlockOSThread()
			res <- result{err: err}
			return
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			res <- result{err: err}
			return
		}
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", addr)
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		}
		res <- result{conn, err}
	}()
	r := <-res
	return r.conn, r.err
}
