package kubelet

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"

	"github.com/vishvananda/netns"
	"k8s.io/cri-streaming/pkg/streaming/portforward"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
)

func (k *Kubelet) servePortForward(w http.ResponseWriter, r *http.Request) {
	pw := k.podFor(w, r)
	if pw == nil {
		return
	}
	opts, err := portforward.NewV4Options(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	portforward.ServePortForward(w, r, &portForwarder{pod: pw}, pw.name, string(pw.uid), opts,
		streamIdleTimeout, remotecommand.DefaultStreamCreationTimeout, portforward.SupportedProtocols)
}

// portForwarder connects a stream to a port on the pod's loopback, from inside its namespace.
type portForwarder struct{ pod *podWorker }

func (p *portForwarder) PortForward(ctx context.Context, _, _ string, port int32, stream io.ReadWriteCloser) error {
	defer stream.Close()
	p.pod.mu.Lock()
	sb := p.pod.sandbox
	p.pod.mu.Unlock()
	if sb == nil {
		return fmt.Errorf("pod %s/%s has no sandbox", p.pod.namespace, p.pod.name)
	}
	conn, err := dialInNetns(ctx, sb.NetnsPath(), net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port))))
	if err != nil {
		return fmt.Errorf("connecting to port %d of pod %s/%s: %w", port, p.pod.namespace, p.pod.name, err)
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
