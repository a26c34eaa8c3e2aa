package engine

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/moby/moby/client"

	"github.com/watcher-dev/watcher/internal/testcerts"
)

// TestConnectToTLS: a tcp:// target with TLS files verifies the engine against its CA and shows
// the client certificate; the wrong CA, or no client certificate where one is required, fails.
func TestConnectToTLS(t *testing.T) {
	good, err := testcerts.Write(t.TempDir(), testcerts.Options{})
	if err != nil {
		t.Fatal(err)
	}
	other, err := testcerts.Write(t.TempDir(), testcerts.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Api-Version", "1.41")
		_, _ = w.Write([]byte("OK"))
	}))
	cert, err := tls.LoadX509KeyPair(good.ServerCert, good.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	ca, _ := os.ReadFile(good.CA)
	pool.AppendCertsFromPEM(ca)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	srv.StartTLS()
	defer srv.Close()
	host := "tcp://" + strings.TrimPrefix(srv.URL, "https://")

	for _, tc := range []struct {
		name   string
		target Target
		ok     bool
	}{
		{"verified, client certificate", Target{Host: host, TLS: true, CAFile: good.CA, CertFile: good.Cert, KeyFile: good.Key, Verify: true}, true},
		{"wrong CA", Target{Host: host, TLS: true, CAFile: other.CA, CertFile: good.Cert, KeyFile: good.Key, Verify: true}, false},
		{"no client certificate", Target{Host: host, TLS: true, CAFile: good.CA, Verify: true}, false},
		{"not verified", Target{Host: host, TLS: true, CertFile: good.Cert, KeyFile: good.Key}, true},
		{"plain TCP to a TLS engine", Target{Host: host}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cli, err := ConnectTo(tc.target)
			if err != nil {
				t.Fatal(err)
			}
			defer cli.Close()
			_, err = cli.Ping(context.Background(), client.PingOptions{})
			if (err == nil) != tc.ok {
				t.Errorf("Ping = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

// TestPodmanDetected: an engine whose answers carry Libpod-Api-Version is Podman, and its
// inspect is corrected (ulimit names, HOSTNAME, addresses kept); Docker's is left alone.
func TestPodmanDetected(t *testing.T) {
	inspect := `{"Id":"abc","Name":"/web","Config":{"Hostname":"abc123","Env":["PATH=/","HOSTNAME=abc123","A=1"],"MacAddress":"02:42:ac:11:00:02"},
"HostConfig":{"Ulimits":[{"Name":"RLIMIT_NOFILE","Soft":1024,"Hard":1024}],"Memory":9007199254740993},
"NetworkSettings":{"Networks":{"n1":{"IPAMConfig":null,"IPAddress":"10.98.0.5","Aliases":["web"]},"n2":{"IPAMConfig":{"IPv4Address":"10.99.0.7"},"IPAddress":"10.99.0.7"}}}}`
	for _, podman := range []bool{false, true} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Api-Version", "1.41")
			if podman {
				w.Header().Set("Libpod-Api-Version", "4.3.1")
			}
			_, _ = w.Write([]byte(inspect))
		}))
		cli, err := ConnectTo(Target{Host: "tcp://" + strings.TrimPrefix(srv.URL, "http://")})
		if err != nil {
			t.Fatal(err)
		}
		res, err := cli.ContainerInspect(context.Background(), "abc", client.ContainerInspectOptions{})
		srv.Close()
		if err != nil {
			t.Fatal(err)
		}
		if cli.Podman() != podman {
			t.Errorf("Podman() = %v, want %v", cli.Podman(), podman)
		}
		c := res.Container
		ep := c.NetworkSettings.Networks["n1"]
		gotFixed := c.HostConfig.Ulimits[0].Name == "nofile" && len(c.Config.Env) == 2 && ep.IPAMConfig != nil && ep.IPAMConfig.IPv4Address.String() == "10.98.0.5"
		if gotFixed != podman {
			t.Errorf("podman=%v: ulimits %+v, env %v, n1 %+v: corrected=%v", podman, c.HostConfig.Ulimits[0], c.Config.Env, ep.IPAMConfig, gotFixed)
		}
		var raw struct {
			Config     struct{ MacAddress string }
			HostConfig struct{ Memory json.Number }
		}
		if err := json.Unmarshal(res.Raw, &raw); err != nil || raw.Config.MacAddress == "" || raw.HostConfig.Memory != "9007199254740993" {
			t.Errorf("podman=%v: Raw lost what the typed struct does not hold or a number's precision: %s", podman, res.Raw)
		}
		if podman && !strings.Contains(string(res.Raw), `"Name":"nofile"`) {
			t.Errorf("Raw (the journal's snapshot) not corrected: %s", res.Raw)
		}
	}
}

// TestVersionPerEngine: each host's client speaks its own engine's API version.
func TestVersionPerEngine(t *testing.T) {
	var clients []*Client
	paths := make([]chan string, 2)
	for i, ver := range []string{"1.41", "1.45"} {
		paths[i] = make(chan string, 10)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Api-Version", ver)
			if r.URL.Path != "/_ping" {
				paths[i] <- r.URL.Path
			}
			_, _ = w.Write([]byte("[]"))
		}))
		defer srv.Close()
		cli, err := ConnectTo(Target{Host: "tcp://" + strings.TrimPrefix(srv.URL, "http://")})
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, cli)
	}
	for round := 0; round < 2; round++ {
		for i, cli := range clients {
			if _, err := cli.ContainerList(context.Background(), client.ContainerListOptions{}); err != nil {
				t.Fatal(err)
			}
			if p := <-paths[i]; round == 1 && p != "/v"+[]string{"1.41", "1.45"}[i]+"/containers/json" {
				t.Errorf("engine %d was asked %s, want its own version", i, p)
			}
		}
	}
}
