package api

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// startServer runs s.ListenAndServe on 127.0.0.1:0 and returns its base URL. Cleanup stops it
// and checks that it shut down cleanly and in time.
func startServer(t *testing.T, s *Server) (string, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s.ListenAndServe(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for s.Addr() == nil {
		select {
		case err := <-errc:
			t.Fatalf("ListenAndServe: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("server did not start listening")
		}
		time.Sleep(time.Millisecond)
	}
	scheme := "http"
	if s.opts.TLSCert != "" {
		scheme = "https"
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-errc:
				if err != nil {
					t.Errorf("ListenAndServe after cancel = %v, want nil", err)
				}
			case <-time.After(shutdownTimeout + 5*time.Second):
				t.Error("ListenAndServe did not return after cancel")
			}
		})
	}
	t.Cleanup(stop)
	return scheme + "://" + s.Addr().String(), stop
}

// call does one request over the socket.
func call(t *testing.T, c *http.Client, method, url, token string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// TestSocket runs every endpoint and status code once over a real socket.
func TestSocket(t *testing.T) {
	f := newFake("web")
	s, _ := newTestServer(f, Options{Listen: "127.0.0.1:0", Token: testToken, RateLimit: 2})
	base, _ := startServer(t, s)
	c := &http.Client{Timeout: 10 * time.Second}
	tests := []struct {
		method, path, token string
		want                int
	}{
		{"GET", "/healthz", "", 200},
		{"GET", "/readyz", "", 200},
		{"POST", "/v1/update?wait=true", testToken, 200},
		{"POST", "/v1/update", testToken, 202},
		{"POST", "/v1/update", testToken, 429}, // RateLimit 2
		{"GET", "/v1/containers", testToken, 200},
		{"GET", "/v1/runs", testToken, 200},
		{"GET", "/v1/runs/run-1", testToken, 200},
		{"GET", "/v1/runs/run-99", testToken, 404},
		{"GET", "/metrics", testToken, 200},
		{"GET", "/metrics", "", 401},
		{"GET", "/v1/containers?x=%00", testToken, 400},
		{"GET", "/v1/update", testToken, 405},
		{"GET", "/nope", "", 404},
	}
	for _, tt := range tests {
		code, h, body := call(t, c, tt.method, base+tt.path, tt.token)
		if code != tt.want {
			t.Errorf("%s %s = %d %s, want %d", tt.method, tt.path, code, body, tt.want)
		}
		if code >= 400 {
			var e errorBody
			if err := json.Unmarshal(body, &e); err != nil || e.Error == "" || e.Reason == "" {
				t.Errorf("%s %s error body = %s, want JSON {error, reason}", tt.method, tt.path, body)
			}
		}
		if code == 429 && h.Get("Retry-After") == "" {
			t.Errorf("429 without Retry-After")
		}
	}
	if err := CheckHealth(context.Background(), s.Addr().String(), false); err != nil {
		t.Errorf("CheckHealth = %v", err)
	}
}

// TestTriggerFlood: 100 concurrent triggers while a run is going on produce at most two runs
// (the running one and the one queued follow-up), and every caller gets a run id.
func TestTriggerFlood(t *testing.T) {
	for _, wait := range []bool{false, true} {
		t.Run(fmt.Sprintf("wait=%t", wait), func(t *testing.T) {
			f := newFake("web", "db")
			release := f.holdRuns()
			defer release()
			s, _ := newTestServer(f, Options{Listen: "127.0.0.1:0", Token: testToken, RateLimit: 1000})
			base, _ := startServer(t, s)
			c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 100}}
			defer c.CloseIdleConnections()

			const n = 100
			ids := make([]string, n)
			errs := make(chan error, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					url := base + "/v1/update"
					if wait {
						url += "?wait=true"
					}
					req, _ := http.NewRequest("POST", url, nil)
					req.Header.Set("Authorization", "Bearer "+testToken)
					resp, err := c.Do(req)
					if err != nil {
						errs <- err
						return
					}
					defer resp.Body.Close()
					var body struct {
						RunID string `json:"run_id"`
						ID    string `json:"id"`
					}
					if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
						errs <- err
						return
					}
					want := http.StatusAccepted
					if wait {
						want = http.StatusOK
						body.RunID = body.ID // the report
					}
					if resp.StatusCode != want || body.RunID == "" {
						errs <- fmt.Errorf("POST #%d = %d, run id %q", i, resp.StatusCode, body.RunID)
						return
					}
					ids[i] = body.RunID
				})
			}
			if wait {
				// Callers wait for their run: let the runs finish once all have joined one.
				waitFor(t, "100 triggers", func() bool { return f.triggerCount() == n })
			}
			if !wait {
				wg.Wait()
			}
			release()
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			distinct := map[string]int{}
			for _, id := range ids {
				distinct[id]++
			}
			if len(distinct) > 2 || len(distinct) == 0 {
				t.Errorf("run ids = %v, want 1 or 2 distinct", distinct)
			}
			if f.triggerCount() != n {
				t.Errorf("service saw %d triggers, want %d", f.triggerCount(), n)
			}
		})
	}
}

// TestShutdown: cancelling ctx ends ListenAndServe promptly even with a caller waiting for a run
// that will not finish; that caller gets a 503 with its run id.
func TestShutdown(t *testing.T) {
	f := newFake("web")
	release := f.holdRuns()
	defer release()
	s, _ := newTestServer(f, Options{Listen: "127.0.0.1:0", Token: testToken})
	base, stop := startServer(t, s)
	type answer struct {
		code int
		body []byte
	}
	got := make(chan answer, 1)
	go func() {
		code, _, body := call(t, http.DefaultClient, "POST", base+"/v1/update?wait=true", testToken)
		got <- answer{code, body}
	}()
	waitFor(t, "the trigger", func() bool { return f.triggerCount() == 1 })
	start := time.Now()
	stop()
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("shutdown took %v with a waiting request", d)
	}
	a := <-got
	var e errorBody
	_ = json.Unmarshal(a.body, &e)
	if a.code != http.StatusServiceUnavailable || e.Reason != ReasonShuttingDown || e.RunID != "run-1" {
		t.Errorf("waiting caller got %d %s, want 503 ShuttingDown with run_id run-1", a.code, a.body)
	}
	if _, err := net.DialTimeout("tcp", s.Addr().String(), time.Second); err == nil {
		t.Error("still accepting connections after shutdown")
	}
}

// TestWaitClientGone: a waiting caller that hangs up frees its handler (the request ctx is honoured).
func TestWaitClientGone(t *testing.T) {
	f := newFake("web")
	release := f.holdRuns()
	defer release()
	s, logs := newTestServer(f, Options{Listen: "127.0.0.1:0", Token: testToken})
	base, _ := startServer(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "POST", base+"/v1/update?wait=true", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	done := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	waitFor(t, "the trigger", func() bool { return f.triggerCount() == 1 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("client error = %v, want context.Canceled", err)
	}
	waitFor(t, "the handler to notice", func() bool { return strings.Contains(logs.String(), "client stopped waiting") })
}

// TestHeaderLimit: headers beyond MaxHeaderBytes are refused by the server (431), not processed.
func TestHeaderLimit(t *testing.T) {
	s, _ := newTestServer(newFake("web"), Options{Listen: "127.0.0.1:0", Token: testToken})
	base, _ := startServer(t, s)
	req, _ := http.NewRequest("GET", base+"/healthz", nil)
	req.Header.Set("X-Junk", strings.Repeat("j", 64<<10))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("64 KiB header = %d, want 431", resp.StatusCode)
	}
}

// TestTLS serves with a self-signed certificate and refuses half a TLS config.
func TestTLS(t *testing.T) {
	cert, key, pool := selfSigned(t)
	s, _ := newTestServer(newFake("web"), Options{Listen: "127.0.0.1:0", Token: testToken, TLSCert: cert, TLSKey: key})
	base, _ := startServer(t, s)
	if !strings.HasPrefix(base, "https://") {
		t.Fatalf("base = %s", base)
	}
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	if code, _, body := call(t, c, "GET", base+"/v1/runs", testToken); code != 200 {
		t.Errorf("GET /v1/runs over TLS = %d %s", code, body)
	}
	if resp, err := http.Get("http://" + s.Addr().String() + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Error("plain HTTP answered 200 on the TLS port")
		}
	}
	if err := CheckHealth(context.Background(), s.Addr().String(), true); err != nil {
		t.Errorf("CheckHealth over TLS = %v", err)
	}

	for _, o := range []Options{{TLSCert: cert}, {TLSKey: key}} {
		o.Listen = "127.0.0.1:0"
		err := New(newFake(), o).ListenAndServe(context.Background())
		if err == nil || !strings.Contains(err.Error(), "http.tls_cert and http.tls_key must be set together") {
			t.Errorf("ListenAndServe(%+v) = %v, want both-or-neither error", o, err)
		}
	}
	err := New(newFake(), Options{Listen: "127.0.0.1:0", TLSCert: key, TLSKey: cert}).ListenAndServe(context.Background())
	if err == nil || !strings.Contains(err.Error(), "http.tls_cert/http.tls_key") {
		t.Errorf("swapped cert and key = %v, want an error naming the keys", err)
	}
}

func TestListenError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	err = New(newFake(), Options{Listen: ln.Addr().String()}).ListenAndServe(context.Background())
	if err == nil || !strings.Contains(err.Error(), "http.listen") {
		t.Errorf("listening on a taken port = %v, want an error naming http.listen", err)
	}
}

func TestCheckHealthFails(t *testing.T) {
	f := newFake()
	s, _ := newTestServer(f, Options{Listen: "127.0.0.1:0"})
	_, stop := startServer(t, s)
	addr := s.Addr().String()
	stop()
	if err := CheckHealth(context.Background(), addr, false); err == nil {
		t.Error("CheckHealth on a stopped daemon = nil, want an error")
	}
	if err := CheckHealth(context.Background(), "nonsense", false); err == nil || !strings.Contains(err.Error(), "http.listen") {
		t.Errorf("CheckHealth(nonsense) = %v", err)
	}
}

// selfSigned writes a certificate for 127.0.0.1 and its key, returning their paths and a pool trusting it.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "watcher test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(c)
	return certFile, keyFile, pool
}

// TestWaitOutlivesTimeouts: a caller waiting for a run longer than the server's read and write
// timeouts still gets the report (the deadlines are lifted for that request only).
func TestWaitOutlivesTimeouts(t *testing.T) {
	f := newFake("web")
	release := f.holdRuns()
	defer release()
	s, _ := newTestServer(f, Options{Listen: "127.0.0.1:0", Token: testToken})
	s.timeouts.read, s.timeouts.write = 100*time.Millisecond, 100*time.Millisecond
	base, _ := startServer(t, s)
	go func() {
		waitFor(t, "the trigger", func() bool { return f.triggerCount() == 1 })
		time.Sleep(500 * time.Millisecond)
		release()
	}()
	code, _, body := call(t, http.DefaultClient, "POST", base+"/v1/update?wait=true", testToken)
	if code != http.StatusOK || !strings.Contains(string(body), `"id":"run-1"`) {
		t.Errorf("POST ?wait=true over a slow run = %d %s, want 200 with run-1", code, body)
	}
	// Other requests keep the short timeouts: a client that sends half a request is cut off.
	conn, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /v1/update HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(conn); err != nil {
		t.Errorf("a stalled request was not cut off by the read timeout: %v", err)
	}
}
