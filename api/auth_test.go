package api

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestToken pins the token rules for the trigger (and the same check guards the reads):
// the scheme is case-insensitive, the token is exact, and nothing else gets in.
func TestToken(t *testing.T) {
	tok := testToken
	tests := []struct {
		name   string
		header []string // Authorization header values; nil = none
		want   int
		msg    string
	}{
		{"none", nil, 401, "missing bearer token"},
		{"empty header", []string{""}, 401, "authorization scheme must be Bearer"},
		{"scheme only", []string{"Bearer"}, 401, "empty bearer token"},
		{"scheme and space", []string{"Bearer "}, 401, "empty bearer token"},
		{"wrong", []string{"Bearer wrong"}, 401, "invalid bearer token"},
		{"prefix of the token", []string{"Bearer " + tok[:len(tok)-1]}, 401, "invalid bearer token"},
		{"first byte only", []string{"Bearer " + tok[:1]}, 401, "invalid bearer token"},
		{"token plus a byte", []string{"Bearer " + tok + "x"}, 401, "invalid bearer token"},
		{"token in upper case", []string{"Bearer " + strings.ToUpper(tok)}, 401, "invalid bearer token"},
		{"token with NUL", []string{"Bearer " + tok + "\x00"}, 401, "invalid bearer token"},
		{"token then more", []string{"Bearer " + tok + " more"}, 401, "malformed bearer token"},
		{"basic scheme", []string{"Basic " + base64.StdEncoding.EncodeToString([]byte("admin:"+tok))}, 401, "scheme must be Bearer"},
		{"token scheme", []string{"Token " + tok}, 401, "scheme must be Bearer"},
		{"no scheme", []string{tok}, 401, "scheme must be Bearer"},
		{"tab after scheme", []string{"Bearer\t" + tok}, 401, "scheme must be Bearer"},
		{"two headers", []string{"Bearer " + tok, "Bearer " + tok}, 401, "more than one Authorization header"},
		{"right", []string{"Bearer " + tok}, 202, ""},
		{"lowercase scheme", []string{"bearer " + tok}, 202, ""},
		{"uppercase scheme", []string{"BEARER " + tok}, 202, ""},
		{"two spaces", []string{"Bearer  " + tok}, 202, ""},
		{"surrounding spaces", []string{" Bearer " + tok + " "}, 202, ""},
	}
	s, logs := newTestServer(newFake("web"), Options{Token: tok})
	for i, tt := range tests {
		for _, target := range []string{"POST /v1/update", "GET /v1/containers", "GET /metrics"} {
			method, path, _ := strings.Cut(target, " ")
			req := httptest.NewRequest(method, path, nil)
			req.RemoteAddr = fmt.Sprintf("192.0.2.%d:1234", i+1) // a client per case: no throttling
			for _, v := range tt.header {
				req.Header.Add("Authorization", v)
			}
			rec := httptest.NewRecorder()
			s.Handler().ServeHTTP(rec, req)
			want := tt.want
			if want == 202 && method == "GET" {
				want = 200
			}
			if rec.Code != want {
				t.Errorf("%s: %s = %d %s, want %d", tt.name, target, rec.Code, rec.Body, want)
				continue
			}
			if want == 401 {
				if !strings.Contains(rec.Body.String(), tt.msg) {
					t.Errorf("%s: %s body = %s, want %q", tt.name, target, rec.Body, tt.msg)
				}
				if !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), `Bearer realm="watcher"`) {
					t.Errorf("%s: WWW-Authenticate = %q", tt.name, rec.Header().Get("WWW-Authenticate"))
				}
				checkNoLeak(t, tt.name, rec.Body.String())
			}
		}
	}
	if strings.Contains(logs.String(), tok[:8]) {
		t.Errorf("log holds (part of) the token:\n%s", logs)
	}
}

// TestNoToken: without http.token nothing that changes things is open, and reads only with public_read.
func TestNoToken(t *testing.T) {
	tests := []struct {
		publicRead   bool
		target, auth string
		want         int
		mention      string
	}{
		{false, "POST /v1/update", "", 403, "http.token is not set"},
		{false, "POST /v1/update", "Bearer ", 403, "http.token is not set"},
		{false, "POST /v1/update", "Bearer anything", 403, "http.token is not set"},
		{false, "GET /v1/containers", "", 403, "http.public_read is false"},
		{false, "GET /v1/runs", "Bearer x", 403, "http.public_read is false"},
		{false, "GET /metrics", "", 403, "http.public_read is false"},
		{false, "GET /healthz", "", 200, ""},
		{false, "GET /readyz", "", 200, ""},
		{true, "POST /v1/update", "", 403, "http.token is not set"},
		{true, "GET /v1/containers", "", 200, ""},
		{true, "GET /v1/runs", "", 200, ""},
		{true, "GET /metrics", "", 200, ""},
	}
	for _, tt := range tests {
		s, _ := newTestServer(newFake("web"), Options{PublicRead: tt.publicRead})
		method, path, _ := strings.Cut(tt.target, " ")
		res := serve(t, s.Handler(), method, path, tt.auth, nil)
		if res.code != tt.want {
			t.Errorf("public_read=%t %s = %d %s, want %d", tt.publicRead, tt.target, res.code, res.body, tt.want)
			continue
		}
		if tt.want == 403 && (res.err.Reason != ReasonTokenNotConfigured || !strings.Contains(res.err.Error, tt.mention)) {
			t.Errorf("public_read=%t %s = %s, want reason %s mentioning %q", tt.publicRead, tt.target, res.body, ReasonTokenNotConfigured, tt.mention)
		}
	}
}

// TestPublicRead: public_read opens the reads only; the trigger still needs the token.
func TestPublicRead(t *testing.T) {
	s, _ := newTestServer(newFake("web"), Options{Token: testToken, PublicRead: true})
	h := s.Handler()
	for _, target := range []string{"/v1/containers", "/v1/runs", "/metrics"} {
		for _, auth := range []string{"", "Bearer wrong"} {
			if res := serve(t, h, "GET", target, auth, nil); res.code != http.StatusOK {
				t.Errorf("GET %s (auth %q) with public_read = %d, want 200", target, auth, res.code)
			}
		}
	}
	if res := serve(t, h, "POST", "/v1/update", "", nil); res.code != http.StatusUnauthorized {
		t.Errorf("POST /v1/update without token, public_read = %d, want 401", res.code)
	}
}

func TestTokenMatch(t *testing.T) {
	c := newTokenChecker("abc")
	for in, want := range map[string]bool{"abc": true, "ab": false, "abcd": false, "": false, "ABC": false} {
		if got := c.match(in); got != want {
			t.Errorf("match(%q) = %t, want %t", in, got, want)
		}
	}
	if newTokenChecker("").match("") {
		t.Error("an unset token matched the empty string")
	}
}
