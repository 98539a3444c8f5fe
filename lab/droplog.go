package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"
)

// dropLogPoll is how often ReadDropLog looks for new lines when following.
const dropLogPoll = 200 * time.Millisecond

// ReadDropLog copies the JSON lines of the drop logs of the lab's agents (only node's unless node
// is "") to w, node by node. With follow it then keeps copying each line an agent adds, once the
// line is complete, until ctx ends.
func ReadDropLog(ctx context.Context, s *State, node string, follow bool, w io.Writer) error {
	files, err := s.dropLogFiles(node)
	if err != nil {
		return err
	}
	tails := make([]*lineTail, len(files))
	for i, f := range files {
		tails[i] = &lineTail{path: f}
	}
	for {
		for _, t := range tails {
			if err := t.copyLines(w); err != nil {
				return err
			}
		}
		if !follow {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(dropLogPoll):
		}
	}
}

// dropLogFiles are the drop log files of node's agent, or of every node's in order when node is "".
// A node's restarted agents share one file.
func (s *State) dropLogFiles(node string) ([]string, error) {
	var files []string
	found := false
	for _, n := range s.Nodes {
		if node != "" && n.Name != node {
			continue
		}
		found = true
		for _, a := range s.Agents {
			if a.Node == n.Name && a.DropLogFile != "" && !slices.Contains(files, a.DropLogFile) {
				files = append(files, a.DropLogFile)
			}
		}
	}
	switch {
	case !found:
		return nil, fmt.Errorf("lab %s has no node %s", s.Name, node)
	case len(files) == 0:
		return nil, fmt.Errorf("the agents of lab %s do not log drops (started with --drop-log %s)", s.Name, DropLogOff)
	}
	return files, nil
}

// lineTail reads a file that grows at its end, a complete line at a time.
type lineTail struct {
	path    string
	offset  int64
	partial []byte // the start of a line not complete yet
}

// copyLines writes the complete lines added since the last call to w. A file not created yet has
// no lines.
func (t *lineTail) copyLines(w io.Writer) error {
	f, err := os.Open(t.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Seek(t.offset, io.SeekStart); err != nil {
		return err
	}
	added, err := io.ReadAll(f)
	if err != nil {
		return fmt.Errorf("reading %s: %w", t.path, err)
	}
	t.offset += int64(len(added))
	t.partial = append(t.partial, added...)
	end := bytes.LastIndexByte(t.partial, '\n')
	if end < 0 {
		return nil
	}
	if _, err := w.Write(t.partial[:end+1]); err != nil {
		return err
	}
	t.partial = slices.Clone(t.partial[end+1:])
	return nil
}
