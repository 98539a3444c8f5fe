package harness

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/nftpolicy/nftpolicy/lab"
	"github.com/nftpolicy/nftpolicy/lab/netlab"
)

// LabUnavailable says why a benchmark that runs a lab cannot run here ("" when it can). It fills in
// *assets (when empty: the newest kube-apiserver in the setup cache) and makes *agentPath absolute.
func LabUnavailable(assets, agentPath *string) string {
	if reason := netlab.Unavailable(); reason != "" {
		return reason
	}
	if *assets == "" {
		dirs, _ := filepath.Glob(filepath.Join(lab.DefaultCacheDir, "*", "kube-apiserver"))
		if len(dirs) == 0 {
			return "no kube-apiserver in " + lab.DefaultCacheDir + ": run hack/build-k8s.sh or set KUBEBUILDER_ASSETS"
		}
		*assets = filepath.Dir(dirs[len(dirs)-1])
	}
	if _, err := os.Stat(*agentPath); err != nil {
		return "no agent binary: " + err.Error()
	}
	abs, err := filepath.Abs(*agentPath)
	if err != nil {
		return err.Error()
	}
	*agentPath = abs
	return ""
}

// WriteJSON writes v, indented, to path.
func WriteJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}

// ReadJSON reads the JSON file at path, as WriteJSON wrote it, into v.
func ReadJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	return nil
}
