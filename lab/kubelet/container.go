package kubelet

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// container is one container of a pod: its resolved command line and environment, and its
// current or last process. Its worker's mutex guards it.
type container struct {
	pod      *podWorker
	spec     corev1.Container
	image    Image
	args     []string // local command line
	env      []string
	restarts int32
	// waiting is set when the container cannot start.
	waiting   *corev1.ContainerStateWaiting
	proc      *process
	last      *corev1.ContainerStateTerminated // the previous process, once restarted
	restartAt time.Time                        // when the exited process restarts; zero: not planned
}

func newContainer(w *podWorker, spec *corev1.Container) *container {
	return &container{pod: w, spec: *spec}
}

// prepare resolves the container's image, environment and command line; a failure leaves the
// container waiting with the reason.
func (c *container) prepare(images map[string]Image, podEnv map[string]string) {
	env, err := containerEnv(&c.spec, podEnv)
	if err != nil {
		c.waiting = &corev1.ContainerStateWaiting{Reason: "CreateContainerConfigError", Message: err.Error()}
		return
	}
	img, err := lookupImage(images, c.spec.Image)
	if err == nil {
		c.image = img
		c.args, err = img.resolve(c.spec.Image, argv(img, &c.spec, envMap(env)))
	}
	var ie *imageError
	if errors.As(err, &ie) {
		c.waiting = &corev1.ContainerStateWaiting{Reason: ie.reason, Message: ie.message}
		return
	}
	c.env = env
}

// id is the containerID of the current process: the runtime's name and a hash of the pod, the
// container and the restart.
func (c *container) id() string {
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s/%s/%d", c.pod.uid, c.spec.Name, c.restarts)))
	return "lab://" + hex.EncodeToString(sum[:])
}

func (c *container) logPath(restarts int32) string {
	return filepath.Join(c.pod.logDir, c.spec.Name, fmt.Sprintf("%d.log", restarts))
}

// start runs the container's command in the pod's network namespace; a failure to start is
// recorded as an exit with code 128.
func (c *container) start(netnsPath string) {
	if c.proc != nil {
		c.last = c.proc.terminated(c.id())
	}
	c.pod.logf("starting container %s: %s", c.spec.Name, strings.Join(c.args, " "))
	p, err := startProcess(netnsPath, c.args, c.env, c.logPath(c.restarts), c.pod.poke)
	if err != nil {
		c.pod.logf("starting container %s: %v", c.spec.Name, err)
	}
	c.proc = p
}

// restartable says whether the exited process is to be replaced.
func (c *container) restartable(policy corev1.RestartPolicy) bool {
	switch policy {
	case corev1.RestartPolicyNever:
		return false
	case corev1.RestartPolicyOnFailure:
		return c.proc.exitCode != 0
	}
	return true
}

// process is one run of a container's command.
type process struct {
	cmd        *exec.Cmd
	startedAt  time.Time
	done       chan struct{}
	exitCode   int32     // valid once done is closed
	finishedAt time.Time // valid once done is closed
	message    string    // why it did not start, if so
}

// startProcess runs args inside the network namespace at netnsPath, with env, its output in the
// file at logPath, in a process group of its own so that signals reach its children. onExit runs
// when the process has exited. A process that cannot start is returned as exited with code 128.
func startProcess(netnsPath string, args, env []string, logPath string, onExit func()) (*process, error) {
	p := &process{startedAt: time.Now(), done: make(chan struct{})}
	fail := func(err error) (*process, error) {
		p.exitCode, p.finishedAt, p.message = 128, time.Now(), err.Error()
		close(p.done)
		onExit()
		return p, err
	}
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return fail(err)
	}
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fail(err)
	}
	p.cmd = nsenterCommand(context.Background(), netnsPath, args, env)
	p.cmd.Stdout, p.cmd.Stderr = log, log
	if err := p.cmd.Start(); err != nil {
		log.Close()
		return fail(fmt.Errorf("starting %s: %w", args[0], err))
	}
	go func() {
		p.exitCode = exitCode(p.cmd.Wait())
		p.finishedAt = time.Now()
		log.Close()
		close(p.done)
		onExit()
	}()
	return p, nil
}

// nsenterCommand runs args in the network namespace at netnsPath: nsenter joins the namespace and
// executes the program, which keeps nsenter's PID.
func nsenterCommand(ctx context.Context, netnsPath string, args, env []string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + netnsPath, "--"}, args...)...)
	cmd.Env = env
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd
}

// exitCode is a process's exit code as a runtime reports it: 128+n when killed by signal n.
func exitCode(err error) int32 {
	if err == nil {
		return 0
	}
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		if ws, ok := exitErr.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int32(ws.Signal())
		}
		return int32(exitErr.ExitCode())
	}
	return 128
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *process) signal(sig syscall.Signal) {
	if p.cmd != nil && p.cmd.Process != nil && !p.exited() {
		_ = syscall.Kill(-p.cmd.Process.Pid, sig)
	}
}

// terminated is the exited process's state in a container status.
func (p *process) terminated(containerID string) *corev1.ContainerStateTerminated {
	reason := "Completed"
	if p.exitCode != 0 {
		reason = "Error"
	}
	if p.message != "" {
		reason = "StartError"
	}
	return &corev1.ContainerStateTerminated{
		ExitCode:    p.exitCode,
		Reason:      reason,
		Message:     p.message,
		StartedAt:   metav1Time(p.startedAt),
		FinishedAt:  metav1Time(p.finishedAt),
		ContainerID: containerID,
	}
}

// stopProcesses sends SIGTERM to procs, then SIGKILL to those still running after grace, and
// waits for all to exit.
func stopProcesses(procs []*process, grace time.Duration) {
	for _, p := range procs {
		p.signal(syscall.SIGTERM)
	}
	deadline := time.NewTimer(grace)
	defer deadline.Stop()
	for _, p := range procs {
		select {
		case <-p.done:
			continue
		case <-deadline.C:
		}
		for _, p := range procs {
			p.signal(syscall.SIGKILL)
		}
		break
	}
	for _, p := range procs {
		<-p.done
	}
}
