package repo

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"testing"
)

// The repository carries its own copy of the scenario format, for a clone without the shared folder
// beside it; where that folder is present, the copy must be identical to it.
func TestScenarioFormatCopyIsIdentical(t *testing.T) {
	copied, err := os.ReadFile("../e2e/scenarios/FORMAT.md")
	if err != nil {
		t.Fatalf("the repository's copy of the scenario format: %v", err)
	}
	shared, err := os.ReadFile("../../../shared/scenarios/FORMAT.md")
	if errors.Is(err, fs.ErrNotExist) {
		t.Skip("no shared/ folder beside the repository: nothing to compare the copy with")
	}
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(copied, shared) {
		t.Error("test/e2e/scenarios/FORMAT.md differs from ../shared/scenarios/FORMAT.md: copy it again")
	}
}
