package api

import (
	"net/http/httptest"
	"net/url"
	"testing"
)

// FuzzUpdateQuery: no query string makes the trigger answer 5xx or pass junk to the daemon.
// go test -fuzz FuzzUpdateQuery ./api/ explores; plain go test runs the seeds.
func FuzzUpdateQuery(f *testing.F) {
	for _, seed := range []string{
		"", "container=web", "container=%00", "image=nginx:1", "wait=true", "container=web&image=x",
		"a=b;c", "%zz", "container=" + url.QueryEscape("/web"), "container=w%C3%A9b", "image=" + string(make([]byte, 600)),
	} {
		f.Add(seed)
	}
	fake := newFake("web")
	s, _ := newTestServer(fake, Options{Token: testToken})
	f.Fuzz(func(t *testing.T, raw string) {
		req := httptest.NewRequest("POST", "/v1/update", nil)
		req.URL.RawQuery = raw
		req.Header.Set("Authorization", "Bearer "+testToken)
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("POST /v1/update?%q = %d %s", raw, rec.Code, rec.Body)
		}
		if rec.Code == 202 || rec.Code == 200 {
			for _, n := range fake.lastRequest(t).Containers {
				if _, err := checkContainerName(n); err != nil || hasControl(n) {
					t.Fatalf("junk name %q reached the daemon", n)
				}
			}
		}
	})
}
