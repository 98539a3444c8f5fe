package lab

// An agent that dies and comes back: killed as a crash or an OOM kill would, then started again on
// the same node. KillAgent and RestartAgent must not run concurrently with each other or with Close.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"
)

// KillAgent kills the node's agent with SIGKILL, as a crash or an OOM kill would: it gets no chance
// to touch its table.
func (l *Lab) KillAgent(nodeName string) error {
	i := slices.IndexFunc(l.agents, func(a *agentProcess) bool { return a.node.name == nodeName })
	if i < 0 {
		return fmt.Errorf("no agent runs on %s", nodeName)
	}
	a := l.agents[i]
	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("killing the agent of %s: %w", nodeName, err)
	}
	select {
	case <-a.exited:
	case <-time.After(agentStopTimeout):
		return fmt.Errorf("the agent of %s did not exit after SIGKILL", nodeName)
	}
	a.log.Close()
	l.agents = slices.Delete(l.agents, i, i+1)
	l.state.Agents = slices.DeleteFunc(l.state.Agents, func(s AgentState) bool { return s.Node == nodeName })
	return l.state.write()
}

// AgentRunning reports whether the node has a running agent.
func (l *Lab) AgentRunning(nodeName string) bool {
	return slices.ContainsFunc(l.agents, func(a *agentProcess) bool { return a.node.name == nodeName })
}

// RestartAgent starts a new agent on a node whose agent was killed and returns once it committed its
// first sync. The log of the killed agent is kept beside the new one's.
func (l *Lab) RestartAgent(ctx context.Context, nodeName string) error {
	a, err := l.restartAgent(ctx, nodeName)
	if err != nil {
		return err
	}
	return a.waitReady(ctx, agentReadyTimeout)
}

// restartAgent starts a new agent on a node whose agent was killed, without waiting for it.
func (l *Lab) restartAgent(ctx context.Context, nodeName string) (*agentProcess, error) {
	if l.AgentRunning(nodeName) {
		return nil, fmt.Errorf("the agent of %s still runs", nodeName)
	}
	n, err := l.node(nodeName)
	if err != nil {
		return nil, err
	}
	logDir := filepath.Join(l.state.Dir, "logs")
	old := filepath.Join(logDir, "agent-"+n.name+".log")
	if err := os.Rename(old, fmt.Sprintf("%s.%d", old, time.Now().UnixNano())); err != nil && !os.IsNotExist(err) {
		return nil, fmt.Errorf("keeping the log of the killed agent: %w", err)
	}
	a, err := l.startAgent(ctx, n, logDir)
	if err != nil {
		return nil, err
	}
	l.agents = append(l.agents, a)
	return a, l.state.write()
}

// AgentLog is the path of the log of the node's current agent.
func (l *Lab) AgentLog(nodeName string) string {
	return filepath.Join(l.state.Dir, "logs", "agent-"+nodeName+".log")
}
