package testenv

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// ServeIn serves the registry on 127.0.0.1 with its own port inside the network namespace at
// netns (/var/run/netns/NAME): 127.0.0.1 in a namespace is that namespace's own loopback, so an
// engine running there pulls r.Host's images from it, as engines on this machine's loopback do
// (and as the watcher checks them). The listener is made on a thread moved into the namespace
// for that call only; the socket stays there, served from this process until the test ends.
func (r *Registry) ServeIn(t testing.TB, netns string) {
	t.Helper()
	l, err := listenIn(netns, r.Host)
	if err != nil {
		t.Fatalf("testenv: registry in %s: %v", netns, err)
	}
	srv := &http.Server{Handler: r}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
}

// listenIn listens on addr inside the network namespace at netns, on a goroutine of its own: its
// thread enters the namespace and leaves it again, and a thread that could not leave ends with
// that goroutine instead of running anything else.
func listenIn(netns, addr string) (net.Listener, error) {
	type result struct {
		l   net.Listener
		err error
	}
	ch := make(chan result, 1)
	go func() {
		l, err := listenOnThread(netns, addr)
		ch <- result{l, err}
	}()
	r := <-ch
	return r.l, r.err
}

func listenOnThread(netns, addr string) (net.Listener, error) {
	target, err := os.Open(netns)
	if err != nil {
		return nil, err
	}
	defer target.Close()
	runtime.LockOSThread()
	self, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
	if err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	defer self.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("entering the namespace: %w", err)
	}
	l, lerr := net.Listen("tcp", addr)
	if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
		return l, lerr // still locked: the thread ends with this goroutine
	}
	runtime.UnlockOSThread()
	return l, lerr
}
