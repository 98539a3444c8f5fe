package netlab

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// netnsDir is where named network namespaces are bind-mounted, as `ip netns` does.
const netnsDir = "/run/netns"

// Netns is a named network namespace, visible to `ip netns exec NAME`.
type Netns struct {
	Name string
	Path string // /run/netns/NAME
}

// newNetns creates a named network namespace. The calling thread enters the new namespace to create
// it and then returns to where it was; if it cannot return, it is left locked so that Go retires it
// instead of running other goroutines in the wrong namespace.
func newNetns(name string) (*Netns, error) {
	if err := sharedNetnsDir(); err != nil {
		return nil, err
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		origin, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("getting the current network namespace: %w", err)
			return
		}
		defer origin.Close()
		created, err := netns.NewNamed(name)
		if err == nil {
			created.Close()
		}
		if serr := netns.Set(origin); serr != nil {
			errc <- errors.Join(err, fmt.Errorf("returning to the original network namespace: %w", serr))
			return // the thread stays locked and dies with this goroutine
		}
		runtime.UnlockOSThread()
		if err != nil {
			err = fmt.Errorf("creating network namespace %s: %w", name, err)
		}
		errc <- err
	}()
	if err := <-errc; err != nil {
		return nil, err
	}
	return &Netns{Name: name, Path: filepath.Join(netnsDir, name)}, nil
}

// netnsDirOnce makes netnsDir a mount point of its own once per process.
var (
	netnsDirOnce sync.Once
	errNetnsDir  error
)

// sharedNetnsDir makes netnsDir a shared mount point, bind-mounted onto itself when it is not one
// yet, as `ip netns add` does before its first namespace. Otherwise the first `ip netns add` run by
// anyone after our namespaces exist stacks that bind mount over them, and their names can no longer
// be unmounted or removed ("device or resource busy").
func sharedNetnsDir() error {
	netnsDirOnce.Do(func() {
		if err := os.MkdirAll(netnsDir, 0o755); err != nil {
			errNetnsDir = fmt.Errorf("creating %s: %w", netnsDir, err)
			return
		}
		err := unix.Mount("", netnsDir, "none", unix.MS_SHARED|unix.MS_REC, "")
		if errors.Is(err, unix.EINVAL) { // not a mount point yet
			if err = unix.Mount(netnsDir, netnsDir, "none", unix.MS_BIND|unix.MS_REC, ""); err == nil {
				err = unix.Mount("", netnsDir, "none", unix.MS_SHARED|unix.MS_REC, "")
			}
		}
		if err != nil {
			errNetnsDir = fmt.Errorf("making %s a shared mount point: %w", netnsDir, err)
		}
	})
	return errNetnsDir
}

// Delete removes the namespace's name. The kernel frees the namespace, and the interfaces in it,
// once no process, socket or open handle refers to it any more.
func (n *Netns) Delete() error {
	if err := netns.DeleteNamed(n.Name); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("deleting network namespace %s: %w", n.Name, err)
	}
	return nil
}

// Do runs fn on a thread that is inside the namespace. Sockets that fn creates stay in the namespace
// after Do returns, whichever goroutine uses them. fn must not start goroutines that expect to be in
// the namespace.
func (n *Netns) Do(fn func() error) error {
	target, err := netns.GetFromPath(n.Path)
	if err != nil {
		return fmt.Errorf("opening network namespace %s: %w", n.Name, err)
	}
	defer target.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		origin, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("getting the current network namespace: %w", err)
			return
		}
		defer origin.Close()
		if err := netns.Set(target); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("entering network namespace %s: %w", n.Name, err)
			return
		}
		ferr := fn()
		if err := netns.Set(origin); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("leaving network namespace %s: %w", n.Name, err))
			return // the thread stays locked and dies with this goroutine
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// Sweep deletes every named network namespace whose name starts with prefix: the leftovers of runs
// that were killed before they could clean up.
func Sweep(prefix string) error {
	if prefix == "" {
		return errors.New("sweeping network namespaces: empty prefix")
	}
	entries, err := os.ReadDir(netnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("listing %s: %w", netnsDir, err)
	}
	var errs []error
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			errs = append(errs, (&Netns{Name: e.Name(), Path: filepath.Join(netnsDir, e.Name())}).Delete())
		}
	}
	return errors.Join(errs...)
}
