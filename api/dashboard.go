package api

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
)

// The dashboard: static files embedded in the binary, served at / and /ui/{file}. No build step,
// nothing from another origin; the page reads the API with the token the user types (kept in
// sessionStorage, sent as a Bearer header). docs/dashboard.md describes it.

//go:embed dashboard
var dashboardFiles embed.FS

// contentSecurityPolicy is on every answer: the page loads and connects only to this origin, runs
// no inline script or style, and cannot be framed.
const contentSecurityPolicy = "default-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; object-src 'none'"

// asset is one embedded file, ready to serve: as it is and gzipped, with its ETag.
type asset struct {
	body, gz    []byte
	contentType string
	etag        string
}

// dashboardAssets are the embedded files by name, read and compressed on the first request for
// one, not at start: a daemon nobody opens the page of never pays for them (compressing them
// allocates some 4 MB, which at start would only raise the heap the daemon then keeps).
var dashboardAssets = sync.OnceValue(loadAssets)

// assetTypes are the Content-Types of the dashboard's files (the ones Go's own table gives),
// so that serving them does not load the system's MIME tables (/etc/mime.types and the like,
// some 400 KB kept for the process's life) for four names.
var assetTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
}

func loadAssets() map[string]*asset {
	out := map[string]*asset{}
	entries, err := fs.ReadDir(dashboardFiles, "dashboard")
	if err != nil {
		panic("api: embedded dashboard: " + err.Error()) // the build embeds it: cannot happen
	}
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression) // one writer for all: each costs ~1 MB
	for _, e := range entries {
		body, err := dashboardFiles.ReadFile("dashboard/" + e.Name())
		if err != nil {
			panic("api: embedded dashboard: " + err.Error())
		}
		gz.Reset()
		zw.Reset(&gz)
		_, _ = zw.Write(body)
		_ = zw.Close()
		sum := sha256.Sum256(body)
		out[e.Name()] = &asset{body: body, gz: bytes.Clone(gz.Bytes()), contentType: assetType(e.Name()),
			etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
	}
	return out
}

// assetType is name's Content-Type: from assetTypes, else the system's tables.
func assetType(name string) string {
	ext := path.Ext(name)
	if ct, ok := assetTypes[ext]; ok {
		return ct
	}
	if ct := mime.TypeByExtension(ext); ct != "" {
		return ct
	}
	return "application/octet-stream"
}

// handleDashboard is GET /: the page.
func (s *Server) handleDashboard(w http.ResponseWriter, r *http.Request) {
	if _, err := parseQuery(r.URL.RawQuery); err != nil {
		s.badRequest(w, r, err)
		return
	}
	serveAsset(w, r, dashboardAssets()["index.html"])
}

// handleAsset is GET /ui/{file}: the page's script, style and icon.
func (s *Server) handleAsset(w http.ResponseWriter, r *http.Request) {
	a := dashboardAssets()[r.PathValue("file")]
	if a == nil || r.PathValue("file") == "index.html" {
		writeError(w, http.StatusNotFound, ReasonNotFound, "no such file: "+quote(r.URL.Path))
		return
	}
	serveAsset(w, r, a)
}

// serveAsset answers with a, gzipped when the client takes it; a revisit with the ETag it has is
// a 304. The files change only with the binary, so the browser may keep them but must ask.
func serveAsset(w http.ResponseWriter, r *http.Request, a *asset) {
	h := w.Header()
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", a.etag)
	h.Set("Vary", "Accept-Encoding")
	h.Set("Content-Type", a.contentType)
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	if match := r.Header.Get("If-None-Match"); match != "" && etagMatches(match, a.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	body := a.body
	if acceptsGzip(r.Header.Get("Accept-Encoding")) {
		h.Set("Content-Encoding", "gzip")
		body = a.gz
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// etagMatches reads an If-None-Match list ("*" or ETags, weak ones compared weakly).
func etagMatches(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == "*" || t == etag {
			return true
		}
	}
	return false
}

// acceptsGzip reads Accept-Encoding: gzip listed without q=0.
func acceptsGzip(header string) bool {
	for _, part := range strings.Split(header, ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(coding), "gzip") {
			continue
		}
		q := strings.ReplaceAll(strings.TrimSpace(params), " ", "")
		return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
	}
	return false
}
