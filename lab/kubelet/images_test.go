package kubelet

import (
	"errors"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestRepository(t *testing.T) {
	for ref, want := range map[string]string{
		"busybox":                    "docker.io/library/busybox",
		"busybox:1.36":               "docker.io/library/busybox",
		"library/busybox@sha256:abc": "docker.io/library/busybox",
		"registry.k8s.io/e2e-test-images/agnhost:2.53": AgnhostRepository,
		"localhost:5000/x/y:tag":                       "localhost:5000/x/y",
		"localhost/x":                                  "localhost/x",
	} {
		if got := repository(ref); got != want {
			t.Errorf("repository(%q) = %q, want %q", ref, got, want)
		}
	}
}

func TestCommandLine(t *testing.T) {
	img := Image{
		Entrypoint: []string{"/agnhost"},
		Cmd:        []string{"pause"},
		Programs:   map[string]string{"/agnhost": "/local/agnhost", "/bin/sh": "/host/sh"},
	}
	env := map[string]string{"PORT": "80"}
	for _, tc := range []struct {
		name          string
		command, args []string
		want          []string
		wantReason    string
	}{
		{name: "image defaults", want: []string{"/local/agnhost", "pause"}},
		{name: "args replace cmd", args: []string{"netexec", "--http-port=$(PORT)"}, want: []string{"/local/agnhost", "netexec", "--http-port=80"}},
		{name: "command replaces entrypoint", command: []string{"sh", "-c"}, args: []string{"echo $$(PORT) $(NOPE)"}, want: []string{"/host/sh", "-c", "echo $(PORT) $(NOPE)"}},
		{name: "absolute path", command: []string{"/bin/sh"}, want: []string{"/host/sh"}},
		{name: "missing program", command: []string{"/bin/bash"}, wantReason: "RunContainerError"},
		{name: "bare name not on the path", command: []string{"agnhost"}, wantReason: "RunContainerError"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &corev1.Container{Command: tc.command, Args: tc.args}
			got, err := img.resolve("agnhost", argv(img, c, env))
			var ie *imageError
			switch {
			case tc.wantReason != "":
				if !errors.As(err, &ie) || ie.reason != tc.wantReason {
					t.Errorf("got %q, %v; want reason %s", got, err, tc.wantReason)
				}
			case err != nil || !slices.Equal(got, tc.want):
				t.Errorf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestLookupImageUnmapped(t *testing.T) {
	_, err := lookupImage(map[string]Image{"busybox": {}}, "docker.io/library/busybox:1.36")
	if err != nil {
		t.Errorf("busybox:1.36 is mapped by busybox: %v", err)
	}
	_, err = lookupImage(map[string]Image{"busybox": {}}, "nginx")
	var ie *imageError
	if !errors.As(err, &ie) || ie.reason != "ErrImageNeverPull" {
		t.Errorf("nginx: got %v, want ErrImageNeverPull", err)
	}
}

func TestContainerEnv(t *testing.T) {
	fields := map[string]string{"metadata.name": "p", "status.podIP": "198.18.1.1"}
	c := &corev1.Container{Name: "c", Env: []corev1.EnvVar{
		{Name: "A", Value: "a"},
		{Name: "B", Value: "$(A)-b"},
		{Name: "IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
	}}
	got, err := containerEnv(c, fields)
	want := []string{"PATH=" + defaultPath, "HOSTNAME=p", "A=a", "B=a-b", "IP=198.18.1.1"}
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("got %q, %v; want %q", got, err, want)
	}
	c.Env = append(c.Env, corev1.EnvVar{Name: "S", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{}}})
	if _, err := containerEnv(c, fields); err == nil {
		t.Errorf("a secret reference was accepted")
	}
}
