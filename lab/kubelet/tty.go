package kubelet

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
)

// openPTY opens a pseudo-terminal pair: the controlling side stays with the kubelet, the terminal
// side becomes the command's stdin, stdout and stderr.
func openPTY() (ptmx, tty *os.File, err error) {
	ptmx, err = os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("opening a pseudo-terminal: %w", err)
	}
	fail := func(err error) (*os.File, *os.File, error) {
		ptmx.Close()
		return nil, nil, fmt.Errorf("opening a pseudo-terminal: %w", err)
	}
	if err := unix.IoctlSetPointerInt(int(ptmx.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		return fail(err)
	}
	n, err := unix.IoctlGetInt(int(ptmx.Fd()), unix.TIOCGPTN)
	if err != nil {
		return fail(err)
	}
	tty, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return fail(err)
	}
	return ptmx, tty, nil
}

// runWithTTY runs c on a new pseudo-terminal as the leader of a new session, copying in to the
// terminal and the terminal's output to out, and applying resize events. It returns c.Wait's error.
func runWithTTY(c *exec.Cmd, in io.Reader, out io.Writer, resize <-chan remotecommand.TerminalSize) error {
	ptmx, tty, err := openPTY()
	if err != nil {
		return err
	}
	defer ptmx.Close()
	c.Stdin, c.Stdout, c.Stderr = tty, tty, tty
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	err = c.Start()
	tty.Close() // the command holds it now
	if err != nil {
		return err
	}
	if resize != nil {
		go func() {
			for size := range resize {
				_ = unix.IoctlSetWinsize(int(ptmx.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: size.Height, Col: size.Width})
			}
		}()
	}
	if in != nil {
		go func() { _, _ = io.Copy(ptmx, in) }()
	}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		if out == nil {
			out = io.Discard
		}
		// Reading ends with EIO once every holder of the terminal closed it.
		_, _ = io.Copy(out, ptmx)
	}()
	waitErr := c.Wait()
	// A background child may keep the terminal open: wait for the output only a little.
	select {
	case <-copied:
	case <-time.After(time.Second):
	}
	return waitErr
}
