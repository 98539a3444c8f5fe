package kubelet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"time"

	apiremotecommand "k8s.io/apimachinery/pkg/util/remotecommand"
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
