package kubelet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"time"

	"github.com/vishvananda/netns"
	apiremotecommand "k8s.io/apimachinery/pkg/util/remotecommand"
	"k8s.io/cri-streaming/pkg/streaming/portforward"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	utilexec "k8s.io/utils/exec"
)

// streamIdleTimeout closes an exec or port-forward stream without traffic, as the kubelet's
// default --streaming-connection-idle-timeout does.
const streamIdleTimeout = 4 * time.Hour

// routes is the kubelet API: the paths the API server calls for pods/exec, pods/log and
// pods/portforward, and /healthz.
func (k *Kubelet) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	mux.HandleFunc("/exec/{namespace}/{pod}/{container}", k.serveExec)
	mux.HandleFunc("/containerLogs/{namespace}/{pod}/{container}", k.serveLogs)
	mux.HandleFunc("/portForward/{namespace}/{pod}", k.servePortForward)
	return mux
}

// podFor finds the running pod of a request, answering 404 itself if there is none.
func (k *Kubelet) podFor(w http.ResponseWriter, r *http.Request) *podWorker {
	ns, name := r.PathValue("namespace"), r.PathValue("pod")
	pw := k.worker(ns, name)
	if pw == nil {
		http.Error(w, fmt.Sprintf("pod %s/%s does not run on node %s", ns, name, k.cfg.NodeName), http.StatusNotFound)
	}
	return pw
}

func (k *Kubelet) serveExec(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		http.Error(w, "exec takes GET or POST", http.StatusMethodNotAllowed)
		return
	}
	pw := k.podFor(w, r)
	if pw == nil {
		return
	}
	opts, err := remotecommand.NewOptions(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	cmd := r.URL.Query()["command"]
	remotecommand.ServeExec(w, r, &executor{pod: pw}, pw.name, string(pw.uid), r.PathValue("container"), cmd, opts,
		streamIdleTimeout, remotecommand.DefaultStreamCreationTimeout, apiremotecommand.SupportedStreamingProtocols)
}

// executor runs exec commands in a pod's network namespace with a container's image and env.
type executor struct{ pod *podWorker }

// ExecInContainer runs cmd, resolved in the container's image, with the container's env in the
// pod's network namespace, on a pseudo-terminal if tty is set; a non-zero exit is returned as a
// CodeExitError carrying the code.
func (e *executor) ExecInContainer(ctx context.Context, _, _, container string, cmd []string, in io.Reader, out, errOut io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize, _ time.Duration) error {
	target, err := e.pod.execTarget(container)
	if err != nil {
		return err
	}
	args, err := target.image.resolve(target.imageRef, cmd)
	if err != nil {
		return err
	}
	// The command is killed when the client goes.
	c := nsenterCommand(ctx, target.netnsPath, args, target.env)
	if tty {
		c.Env = append(c.Env, "TERM=xterm")
		err = runWithTTY(c, in, out, resize)
	} else {
		err = runPlain(c, in, out, errOut)
	}
	if err != nil {
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			return utilexec.CodeExitError{Err: err, Code: int(exitCode(err))}
		}
		return fmt.Errorf("running %s: %w", cmd[0], err)
	}
	return nil
}

// runPlain runs c with the exec streams as its stdin, stdout and stderr.
func runPlain(c *exec.Cmd, in io.Reader, out, errOut io.Writer) error {
	if out != nil {
		c.Stdout = out
	}
	if errOut != nil {
		c.Stderr = errOut
	}
	if in != nil {
		stdin, err := c.StdinPipe()
		if err != nil {
			return err
		}
		// Not waited for: the client may keep its stdin open after the command exited.
		go func() {
			_, _ = io.Copy(stdin, in)
			stdin.Close()
		}()
	}
	return c.Run()
}

// serveLogs writes a container's output; follow=true keeps writing until the process exits or the
// client goes, previous=true writes the previous run's, tailLines and limitBytes cut it.
// Timestamps are not recorded, so timestamps and since* are refused.
func (k *Kubelet) serveLogs(w http.ResponseWriter, r *http.Request) {
	pw := k.podFor(w, r)
	if pw == nil {
		return
	}
	q := r.URL.Query()
	for _, refused := range []string{"sinceSeconds", "sinceTime"} {
		if q.Get(refused) != "" {
			http.Error(w, refused+" is not supported by the lab kubelet", http.StatusBadRequest)
			return
		}
	}
	if ts, _ := strconv.ParseBool(q.Get("timestamps")); ts {
		http.Error(w, "timestamps are not recorded by the lab kubelet", http.StatusBadRequest)
		return
	}
	follow, _ := strconv.ParseBool(q.Get("follow"))
	previous, _ := strconv.ParseBool(q.Get("previous"))
	path, done, err := pw.logFile(r.PathValue("container"), previous)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f, err := os.Open(path)
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	defer f.Close()
	var body io.Writer = w
	if limit, err := strconv.ParseInt(q.Get("limitBytes"), 10, 64); err == nil && limit > 0 {
		body = &limitWriter{w: w, left: limit}
	}
	w.Header().Set("Content-Type", "text/plain")
	if tail, err := strconv.Atoi(q.Get("tailLines")); err == nil && tail >= 0 {
		if err := seekTail(f, tail); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
	}
	if _, err := io.Copy(body, f); err != nil || !follow {
		return
	}
	followLog(r.Context(), w, body, f, done)
}

// followLog copies what the process appends to f until it exits or ctx ends.
func followLog(ctx context.Context, w http.ResponseWriter, body io.Writer, f *os.File, done <-chan struct{}) {
	flusher, _ := w.(http.Flusher)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		if flusher != nil {
			flusher.Flush()
		}
		exited := false
		select {
		case <-ctx.Done():
			return
		case <-done:
			exited = true
		case <-tick.C:
		}
		if _, err := io.Copy(body, f); err != nil || exited {
			return
		}
	}
}

// seekTail positions f at the start of its last n lines.
func seekTail(f *os.File, n int) error {
	data, err := io.ReadAll(f)
	if err != nil {
		return err
	}
	end := len(data)
	if end > 0 && data[end-1] == '\n' {
		end--
	}
	start := end
	for lines := 0; start > 0; start-- {
		if data[start-1] == '\n' {
			lines++
			if lines == n {
				break
			}
		}
	}
	if n == 0 {
		start = len(data)
	}
	_, err = f.Seek(int64(start), io.SeekStart)
	return err
}

type limitWriter struct {
	w    io.Writer
	left int64
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if l.left <= 0 {
		return 0, io.ErrShortWrite
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.w.Write(p)
	l.left -= int64(n)
	if err == nil && l.left == 0 {
		err = io.ErrShortWrite
	}
	return n, err
}

// logFile returns the log of the container's current or previous process, and a channel closed
// when the current process exited.
func (w *podWorker) logFile(container string, previous bool) (string, <-chan struct{}, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	c := w.container(container)
	if c == nil || c.proc == nil {
		return "", nil, fmt.Errorf("container %q in pod %s/%s has not started", container, w.namespace, w.name)
	}
	if previous {
		if c.restarts == 0 {
			return "", nil, fmt.Errorf("previous terminated container %q in pod %s/%s not found", container, w.namespace, w.name)
		}
		closed := make(chan struct{})
		close(closed)
		return c.logPath(c.restarts - 1), closed, nil
	}
	return c.logPath(c.restarts), c.proc.done, nil
}

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
