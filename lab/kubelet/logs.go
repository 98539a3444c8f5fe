package kubelet

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"
)

// serveLogs writes a container's output; follow=true keeps writing until the process exits or the
// client goes, previous=true writes the previous run's, tailLines and limitBytes cut it.
// Timestamps are not recorded, so timestamps and since* are refused.
func (k *Kubelet) serveLogs(w http.ResponseWriter, r *http.Request) {
	pw := k.podFor(w, r)
	if pw == nil {
		return
	}
	q := r.URL.Query()
	for _, refused := range []string{"sinceSeconds", "sinceTime"} {
		if q.Get(refused) != "" {
			http.Error(w, refused+" is not supported by the lab kubelet", http.StatusBadRequest)
			return
		}
	}
	if ts, _ := strconv.ParseBool(q.Get("timestamps")); ts {
		http.Error(w, "timestamps are not recorded by the lab kubelet", http.StatusBadRequest)
		return
	}
	follow, _ := strconv.ParseBool(q.Get("follow"))
	previous, _ := strconv.ParseBool(q.Get("previous"))
	path, done, err := pw.logFile(r.PathValue("container"), previous)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f, err := os.Open(path)
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	defer f.Close()
	var body io.Writer = w
	if limit, err := strconv.ParseInt(q.Get("limitBytes"), 10, 64); err == nil && limit > 0 {
		body = &limitWriter{w: w, left: limit}
	}
	w.Header().Set("Content-Type", "text/plain")
	if tail, err := strconv.Atoi(q.Get("tailLines")); err == nil && tail >= 0 {
		if err := seekTail(f, tail); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
	}
	if _, err := io.Copy(body, f); err != nil || !follow {
		return
	}
	followLog(r.Context(), w, body, f, done)
}

// followLog copies what the process appends to f until it exits or ctx ends.
func followLog(ctx context.Context, w http.ResponseWriter, body io.Writer, f *os.File, done <-chan struct{}) {
	flusher, _ := w.(http.Flusher)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		if flusher != nil {
			flusher.Flush()
		}
		exited := false
		select {
		case <-ctx.Done():
			return
		case <-done:
			exited = true
		case <-tick.C:
		}
		if _, err := io.Copy(body, f); err != nil || exited {
			return
		}
	}
}

// seekTail positions f at the start of its last n lines.
func seekTail(f *os.File, n int) error {
	data, err := io.ReadAll(f)
	if err != nil {
		return err
	}
	end := len(data)
	if end > 0 && data[end-1] == '\n' {
		end--
	}
	start := end
	for lines := 0; start > 0; start-- {
		if data[start-1] == '\n' {
			lines++
			if lines == n {
				break
			}
		}
	}
	if n == 0 {
		start = len(data)
	}
	_, err = f.Seek(int64(start), io.SeekStart)
	return err
}

type limitWriter struct {
	w    io.Writer
	left int64
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if l.left <= 0 {
		return 0, io.ErrShortWrite
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.w.Write(p)
	l.left -= int64(n)
	if err == nil && l.left == 0 {
		err = io.ErrShortWrite
	}
	return n, err
}

// logFile returns the log of the container's current or previous process, and a channel closed
// when the current process exited.
func (w *podWorker) logFile(container string, previous bool) (string, <-chan struct{}, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	c := w.container(container)
	if c == nil || c.proc == nil {
		return "", nil, fmt.Errorf("container %q in pod %s/%s has not started", container, w.namespace, w.name)
	}
	if previous {
		if c.restarts == 0 {
			return "", nil, fmt.Errorf("previous terminated container %q in pod %s/%s not found", container, w.namespace, w.name)
		}
		closed := make(chan struct{})
		close(closed)
		return c.logPath(c.restarts - 1), closed, nil
	}
	return c.logPath(c.restarts), c.proc.done, nil
}
