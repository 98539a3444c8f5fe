package lab

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// childProcess is a long-running program the lab starts for its cluster (kube-controller-manager, a
// node's kube-proxy), with its output in a log file of the state directory.
type childProcess struct {
	name   string // for messages: "kube-proxy of node-1"
	cmd    *exec.Cmd
	log    *os.File
	exited chan struct{}
	err    error // why it exited; read after exited is closed
}

// startChild starts argv with its output in logPath, in a process group of its own: a Ctrl-C in the
// terminal reaches the lab only, which stops its children after it stopped using them.
func startChild(name, logPath string, argv []string) (*childProcess, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	c := &childProcess{name: name, cmd: cmd, log: logFile, exited: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		close(c.exited)
	}()
	return c, nil
}

// process is the child's identity for the lab's state.
func (c *childProcess) process() Process {
	p, err := processOf(c.cmd.Process.Pid)
	if err != nil {
		return Process{PID: c.cmd.Process.Pid}
	}
	return p
}

// exitedError says that the child exited, and where its log is.
func (c *childProcess) exitedError() error {
	return fmt.Errorf("%s exited (%w); see %s", c.name, c.err, c.log.Name())
}

// childStopTimeout is how long a child gets to stop after SIGTERM before it is killed.
const childStopTimeout = 10 * time.Second

// stopChildren stops the children: SIGTERM to all, then SIGKILL to those still running after
// childStopTimeout.
func stopChildren(children []*childProcess) error {
	for _, c := range children {
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
	}
	var errs []error
	for _, c := range children {
		select {
		case <-c.exited:
		case <-time.After(childStopTimeout):
			_ = c.cmd.Process.Kill()
			<-c.exited
			errs = append(errs, fmt.Errorf("%s did not stop in %s and was killed", c.name, childStopTimeout))
		}
		c.log.Close()
	}
	return errors.Join(errs...)
}
