package engine

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/moby/moby/client"
	"github.com/moby/moby/client/pkg/versions"
)

// fakeEngine answers /_ping and /containers/json like a daemon whose API range can change while
// the client runs (an upgrade underneath a running watcher): fault injection for a case the real
// test engine cannot stage.
type fakeEngine struct {
	min, max atomic.Value // strings
	paths    chan string
}

func (f *fakeEngine) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	maxV, minV := f.max.Load().(string), f.min.Load().(string)
	w.Header().Set("Api-Version", maxV)
	if r.URL.Path == "/_ping" {
		_, _ = w.Write([]byte("OK"))
		return
	}
	f.paths <- r.URL.Path
	ver := strings.TrimPrefix(strings.SplitN(r.URL.Path, "/", 3)[1], "v")
	if versions.GreaterThan(ver, maxV) {
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(map[string]string{"message": "client version " + ver + " is too new. Maximum supported API version is " + maxV})
		return
	}
	if versions.LessThan(ver, minV) {
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(map[string]string{"message": "client version " + ver + " is too old. Minimum supported API version is " + minV + ", please upgrade your client to a newer version"})
		return
	}
	_ = json.NewEncoder(w).Encode([]any{})
}

func TestFollowsEngineUpgrade(t *testing.T) {
	f := &fakeEngine{paths: make(chan string, 10)}
	f.min.Store("1.24")
	f.max.Store("1.41")
	srv := httptest.NewServer(f)
	defer srv.Close()
	t.Setenv("DOCKER_HOST", "tcp://"+strings.TrimPrefix(srv.URL, "http://"))
	t.Setenv("DOCKER_API_VERSION", "1.25") // Watchtower's old default: must not pin us
	cli, err := Connect()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	list := func() error { _, err := cli.ContainerList(ctx, client.ContainerListOptions{}); return err }

	if err := list(); err != nil {
		t.Fatalf("list on engine 1.41: %v", err)
	}
	if p := <-f.paths; !strings.HasPrefix(p, "/v1.41/") {
		t.Fatalf("first request path = %s, want /v1.41/ (negotiated, not the env's 1.25)", p)
	}

	// The engine is upgraded: its minimum rises above what the client negotiated.
	f.min.Store("1.44")
	f.max.Store("1.52")
	err = list()
	<-f.paths
	if err == nil || !strings.Contains(err.Error(), "too old") {
		t.Fatalf("first list after upgrade: %v, want the engine's too-old error", err)
	}
	if err := list(); err != nil {
		t.Fatalf("second list after upgrade: %v, want success at the engine's new version", err)
	}
	if p := <-f.paths; !strings.HasPrefix(p, "/v1.52/") {
		t.Fatalf("path after upgrade = %s, want /v1.52/", p)
	}

	// Downgraded again (a rollback of the engine package).
	f.min.Store("1.24")
	f.max.Store("1.40")
	if err := list(); err == nil || !strings.Contains(err.Error(), "too new") {
		t.Fatalf("first list after downgrade: %v, want the engine's too-new error", err)
	}
	<-f.paths
	if err := list(); err != nil {
		t.Fatalf("list after downgrade: %v", err)
	}
	if p := <-f.paths; !strings.HasPrefix(p, "/v1.40/") {
		t.Fatalf("path after downgrade = %s, want /v1.40/", p)
	}
}
