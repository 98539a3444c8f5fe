package lab

// These tests bring real labs up: kube-apiserver and etcd from the setup cache, network namespaces,
// and agents. TestMain builds the agent (cmd/nftpolicy) and the lab's command (cmd/nftpolicy-lab) into
// a temporary directory, side by side as `make build` puts them in bin/. They skip,
// saying why, when not run as root or when kube-apiserver and etcd are missing.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nftpolicy/nftpolicy/lab/netlab"
	"github.com/nftpolicy/nftpolicy/lab/scenario"
)

var (
	// agentBinary and labBinary are the nftpolicy and nftpolicy-lab binaries TestMain built; ""
	// when skipReason is set.
	agentBinary string
	labBinary   string
	// skipReason says why no lab can run here.
	skipReason string
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "nftpolicy-lab-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	skipReason = prepare(dir)
	if skipReason != "" {
		fmt.Printf("lab tests skipped: %s\n", skipReason)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// prepare checks that labs can run and builds the agent and the lab's command into dir.
func prepare(dir string) string {
	if reason := netlab.Unavailable(); reason != "" {
		return reason
	}
	root, err := findRepoRoot()
	if err != nil {
		return err.Error()
	}
	if _, err := findAssets(context.Background(), Options{RepoRoot: root, AssetsDir: assetsFromCache()}); err != nil {
		return err.Error()
	}
	agentBinary = filepath.Join(dir, "nftpolicy")
	labBinary = filepath.Join(dir, "nftpolicy-lab")
	build := exec.Command("go", "build", "-o", dir, "./cmd/nftpolicy", "./cmd/nftpolicy-lab")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Sprintf("building the agent and the lab: %v\n%s", err, out)
	}
	return ""
}

// assetsFromCache returns $KUBEBUILDER_ASSETS or the setup cache's newest version, never building:
// a test must not spend minutes compiling kube-apiserver.
func assetsFromCache() string {
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		return dir
	}
	dirs, _ := filepath.Glob(filepath.Join(DefaultCacheDir, "*", "kube-apiserver"))
	if len(dirs) == 0 {
		return filepath.Join(DefaultCacheDir, "missing")
	}
	return filepath.Dir(dirs[len(dirs)-1])
}

func requireLab(t *testing.T) {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
}

func testOptions(t *testing.T) Options {
	return Options{AgentPath: agentBinary, AssetsDir: assetsFromCache(), AgentVerbosity: 2, Log: testWriter{t}}
}

// TestSharedScenarios runs every shared scenario file, unchanged, on a two-node lab, then removes the
// lab and checks that nothing of it is left.
func TestSharedScenarios(t *testing.T) {
	requireLab(t)
	root, err := findRepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(root, "..", "shared", "scenarios", "*.yaml"))
	if len(files) == 0 {
		t.Skip("no scenario files in ../shared/scenarios next to the checkout")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	begin := time.Now()
	l, err := Start(ctx, testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	t.Logf("lab up in %s", time.Since(begin).Round(time.Millisecond))

	var report bytes.Buffer
	summary := scenario.RunFiles(ctx, l, files, scenario.Options{Families: l.Families()}, &report)
	t.Log("\n" + report.String())
	if !summary.OK() || summary.Passed != len(files) {
		t.Errorf("scenarios: %s, want %d passed", summary, len(files))
	}

	state := l.State()
	if err := l.Close(); err != nil {
		t.Errorf("removing the lab: %v", err)
	}
	checkGone(t, &state)
}

// TestDownAfterCrash kills `nftpolicy-lab up` with SIGKILL, so that it cannot clean up, and checks
// that `nftpolicy-lab down` removes every namespace and process it left. The lab finds the agent
// beside its own binary.
func TestDownAfterCrash(t *testing.T) {
	requireLab(t)
	name := fmt.Sprintf("test-%d", os.Getpid())
	up := exec.Command(labBinary, "up", "--name", name, "--nodes", "2", "--assets", assetsFromCache())
	root, err := findRepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	up.Dir = root
	stdout, err := up.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	up.Stderr = testWriter{t}
	if err := up.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = Down(name) })
	waitUp(t, stdout, 2*time.Minute)
	state, err := ReadState(name)
	if err != nil {
		t.Fatal(err)
	}
	if len(state.Agents) != 2 || len(state.Proxies) != 2 || state.ControllerManager == nil || !state.Ready {
		t.Fatalf("state after up: %d agents, %d kube-proxies, kube-controller-manager %v, ready=%t",
			len(state.Agents), len(state.Proxies), state.ControllerManager, state.Ready)
	}
	if state.ProxyMode != ProxyModeNFTables {
		t.Errorf("state after up: proxy mode %q, want the default %q", state.ProxyMode, ProxyModeNFTables)
	}

	// A pod of the API, which a kubelet runs: its process names nothing of the lab.
	runPodThroughAPI(t, state.Kubeconfig, "server")
	inNetns := processesInNetns(state.NetnsPrefix)

	if err := up.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = up.Wait()
	if len(processesOf(state)) == 0 {
		t.Fatal("after SIGKILL of the lab no process of it is left: the test proves nothing")
	}

	down := exec.Command(labBinary, "down", "--name", name)
	if out, err := down.CombinedOutput(); err != nil {
		t.Fatalf("lab down: %v\n%s", err, out)
	}
	checkGone(t, state)
	for _, p := range inNetns {
		if p.alive() {
			t.Errorf("process %d, in a network namespace of the lab, still runs", p.PID)
		}
	}
}

// waitUp reads `lab up`'s output until it says the lab is up.
func waitUp(t *testing.T, stdout interface{ Read([]byte) (int, error) }, timeout time.Duration) {
	t.Helper()
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	deadline := time.After(timeout)
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatal("lab up exited before the lab was up")
			}
			t.Log(line)
			if strings.HasPrefix(line, "Lab ") && strings.HasSuffix(line, " is up. Try:") {
				go func() {
					for range lines { // keep the pipe drained
					}
				}()
				return
			}
		case <-deadline:
			t.Fatalf("lab up did not come up in %s", timeout)
		}
	}
}

// checkGone checks that no network namespace, process or state of the lab is left.
func checkGone(t *testing.T, s *State) {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatalf("ip netns list: %v", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, s.NetnsPrefix) {
			t.Errorf("network namespace left: %s", line)
		}
	}
	for _, a := range s.Agents {
		if a.Process.alive() {
			t.Errorf("agent of %s (process %d) still runs", a.Node, a.Process.PID)
		}
	}
	for _, p := range s.Proxies {
		if p.Process.alive() {
			t.Errorf("kube-proxy of %s (process %d) still runs", p.Node, p.Process.PID)
		}
	}
	if cm := s.ControllerManager; cm != nil && cm.Process.alive() {
		t.Errorf("kube-controller-manager (process %d) still runs", cm.Process.PID)
	}
	for _, p := range processesOf(s) {
		t.Errorf("process %d of the lab still runs", p.PID)
	}
	if _, err := os.Stat(s.Dir); !os.IsNotExist(err) {
		t.Errorf("state directory %s left (%v)", s.Dir, err)
	}
}

// testWriter sends progress lines to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
