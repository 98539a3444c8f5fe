package agent

import (
	"testing"

	"github.com/nftpolicy/nftpolicy/controllers"
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
