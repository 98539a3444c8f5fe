package agent

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache/informertest"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/nftpolicy/nftpolicy/controllers"
	"github.com/nftpolicy/nftpolicy/nft"
	"github.com/nftpolicy/nftpolicy/nft/kernel/nflog"
)

func TestDropLogSettingsOffByDefault(t *testing.T) {
	for _, mode := range []string{"", DropLogOff} {
		if s, err := dropLogSettings(Options{DropLog: mode, DropLogPairRate: 5, DropLogRate: 50}); s != nil || err != nil {
			t.Errorf("mode %q: %+v, %v; want drop logging off", mode, s, err)
		}
	}
	if src, err := OpenDropLog("", Options{}); src != nil || err != nil {
		t.Errorf("OpenDropLog without a mode: %v, %v; want no reader", src, err)
	}
}

func TestDropLogSettingsModes(t *testing.T) {
	for mode, want := range map[string]controllers.DropLogLevel{
		DropLogNamespace: controllers.DropLogOff, // annotations only
		"deny":           controllers.DropLogDeny,
		"all":            controllers.DropLogAll,
	} {
		s, err := dropLogSettings(Options{DropLog: mode, DropLogGroup: 9, DropLogPairRate: 5, DropLogRate: 50})
		if err != nil || s == nil || s.Level != want || s.Group != 9 {
			t.Errorf("mode %q: %+v, %v; want level %q in group 9", mode, s, err, want)
		}
	}
	for _, bad := range []Options{{DropLog: "loud", DropLogPairRate: 5, DropLogRate: 50}, {DropLog: "deny", DropLogRate: 50}} {
		if _, err := dropLogSettings(bad); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

// TestDropLogWritesToTheFileToo runs the logger the agent sets up on a fake group and requires the
// lines in the file as well as in the output.
func TestDropLogWritesToTheFileToo(t *testing.T) {
	path := filepath.Join(t.TempDir(), "drops.jsonl")
	var out bytes.Buffer
	opts := Options{NodeName: "n1", DropLog: "deny", DropLogGroup: 1, DropLogPairRate: 5, DropLogRate: 50, DropLogOut: &out, DropLogFile: path}
	src := nflog.NewFake(1)
	mgr := &runnables{}
	r := &controllers.NodeReconciler{}
	if err := setupDropLog(mgr, r, opts, Dataplane{DropLog: src}, logr.Discard()); err != nil {
		t.Fatal(err)
	}
	if r.DropLog == nil || r.DropLog.Level != controllers.DropLogDeny || r.Committed == nil {
		t.Fatalf("reconciler settings %+v, want deny and a Committed hook", r.DropLog)
	}
	src.Log(nflog.Record{Prefix: nft.LogPrefix + nft.LogPrefixAntiSpoof, Payload: ipv4Header()})
	_ = src.Close()
	if len(mgr.added) != 1 {
		t.Fatalf("%d runnables added, want the drop log reader", len(mgr.added))
	}
	if err := mgr.added[0].Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	file, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if out.Len() == 0 || !bytes.Equal(file, out.Bytes()) || !bytes.Contains(file, []byte(`"anti-spoof"`)) {
		t.Errorf("output %q and file %q, want the same anti-spoofing line in both", out.String(), file)
	}
}

// runnables is the part of a manager setupDropLog uses.
type runnables struct {
	manager.Manager
	added []manager.Runnable
}

func (m *runnables) Add(r manager.Runnable) error { m.added = append(m.added, r); return nil }

// GetCache holds the pod informer that names peers by address.
func (m *runnables) GetCache() cache.Cache { return &informertest.FakeInformers{} }

// ipv4Header is a bare IPv4 header from 198.18.0.1 to 198.18.0.2 with no transport.
func ipv4Header() []byte {
	b := make([]byte, 20)
	b[0], b[9] = 0x45, 253
	copy(b[12:16], []byte{198, 18, 0, 1})
	copy(b[16:20], []byte{198, 18, 0, 2})
	return b
}
