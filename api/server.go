package api

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// Limits and timeouts of the HTTP server. A slow or hostile client holds a connection no longer
// than these; POST /v1/update?wait=true lifts the deadlines for its own request only.
const (
	DefaultListen     = ":8080"
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 30 * time.Second
	writeTimeout      = 60 * time.Second
	idleTimeout       = 120 * time.Second
	maxHeaderBytes    = 16 << 10
	shutdownTimeout   = 10 * time.Second // in-flight requests get this long after ctx is done
	readyTimeout      = 5 * time.Second  // GET /readyz waits this long for the engine
	serviceTimeout    = 30 * time.Second // a request waits this long for the daemon (listing containers)
)

// Options configure the server; the fields mirror the http.* config keys.
type Options struct {
	Listen     string // http.listen; the default is DefaultListen
	Token      string // http.token; empty disables POST /v1/update and, unless PublicRead, the reads
	PublicRead bool   // http.public_read: GET /v1/* and /metrics answer without the token
	TLSCert    string // http.tls_cert; TLS is served when it and TLSKey are both set
	TLSKey     string // http.tls_key
	RateLimit  int    // http.rate_limit: POST /v1/update per client per minute; 0 = no limit
	// WebhookSecret is http.webhook_secret: it authenticates POST /v1/webhooks/{kind}; empty
	// disables them.
	WebhookSecret string
	Logger        *slog.Logger
	Metrics       *Metrics // served on /metrics; nil = a fresh NewMetrics()
	// Events feeds GET /v1/events; the updater must have it among its observers. Nil = a fresh
	// NewEvents() that nothing publishes to (the stream then carries heartbeats only).
	Events  *Events
	Version string // the daemon's version, shown by GET /v1/status
}

// Server is the daemon's HTTP API. Build it with New; it has no side effects until ListenAndServe.
type Server struct {
	svc        Service
	opts       Options
	log        *slog.Logger
	token      tokenChecker
	hook       webhookAuth
	publicRead bool
	limiter    *clientLimiter // triggers per authenticated client (http.rate_limit)

	authFailures *clientLimiter // failed authentications per client, on every endpoint
	failures     *failureLog    // and their log, in aggregate

	metrics *Metrics
	events  *Events
	handler http.Handler

	timeouts timeouts

	stopping chan struct{} // closed when serving ends: waiting requests answer 503
	stopOnce sync.Once
	// base is the context of what a request asks of the daemon: not the request's own, which ends
	// when the client half-closes its connection (see detach), but one that ends with serving.
	base       context.Context
	cancelBase context.CancelFunc
	mu         sync.Mutex
	addr       net.Addr // the listener's address once serving
}

// timeouts are the constants above; tests shorten them.
type timeouts struct {
	readHeader, read, write, idle, shutdown time.Duration
	body                                    time.Duration // a webhook's payload must arrive within this
	heartbeat                               time.Duration // an idle event stream gets a comment this often
}

// New returns a server for svc. It does not listen yet.
func New(svc Service, o Options) *Server {
	if o.Listen == "" {
		o.Listen = DefaultListen
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics()
	}
	if o.Events == nil {
		o.Events = NewEvents()
	}
	s := &Server{
		svc:          svc,
		opts:         o,
		log:          o.Logger,
		token:        newTokenChecker(o.Token),
		hook:         webhookAuth{tokenChecker: newTokenChecker(o.WebhookSecret), key: []byte(o.WebhookSecret)},
		publicRead:   o.PublicRead,
		limiter:      perMinute(o.RateLimit),
		authFailures: newClientLimiter(authFailBurst, authFailInterval),
		failures:     newFailureLog(o.Logger),
		metrics:      o.Metrics,
		events:       o.Events,
		timeouts:     timeouts{readHeaderTimeout, readTimeout, writeTimeout, idleTimeout, shutdownTimeout, webhookBodyTimeout, heartbeatEvery},
		stopping:     make(chan struct{}),
	}
	s.base, s.cancelBase = context.WithCancel(context.Background())
	s.handler = s.routes()
	return s
}

// Handler returns the API's handler with every route, limit and token rule applied
// (what ListenAndServe serves, minus the connection timeouts).
func (s *Server) Handler() http.Handler { return s.handler }

// Addr returns the address the server listens on, or nil before it does. With Listen
// "127.0.0.1:0" this is how the chosen port is learned.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// ListenAndServe listens on Options.Listen (with TLS when a certificate and key are set) and
// serves until ctx is done, then shuts down gracefully: in-flight requests get shutdownTimeout,
// requests waiting for a run answer 503 with the run id at once. It returns nil after a graceful
// shutdown. A Server serves once.
func (s *Server) ListenAndServe(ctx context.Context) error {
	tlsConf, err := s.tlsConfig()
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", s.opts.Listen)
	if err != nil {
		return fmt.Errorf("http.listen %q: %w", s.opts.Listen, err)
	}
	return s.serve(ctx, ln, tlsConf)
}

// Serve is ListenAndServe on a listener the caller opened; it closes ln.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	tlsConf, err := s.tlsConfig()
	if err != nil {
		ln.Close()
		return err
	}
	return s.serve(ctx, ln, tlsConf)
}

func (s *Server) serve(ctx context.Context, ln net.Listener, tlsConf *tls.Config) error {
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: s.timeouts.readHeader,
		ReadTimeout:       s.timeouts.read,
		WriteTimeout:      s.timeouts.write,
		IdleTimeout:       s.timeouts.idle,
		MaxHeaderBytes:    maxHeaderBytes,
		TLSConfig:         tlsConf,
		// "OPTIONS *" reaches the handler, which answers it in JSON like everything else.
		DisableGeneralOptionsHandler: true,
		// The server's own complaints (TLS handshakes from scanners, bad requests) are noise.
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	s.mu.Lock()
	s.addr = ln.Addr()
	s.mu.Unlock()
	s.log.Info("http: listening", "addr", ln.Addr().String(), "tls", tlsConf != nil,
		"token", s.token.set, "public_read", s.publicRead)

	errc := make(chan error, 1)
	go func() {
		if tlsConf != nil {
			errc <- srv.ServeTLS(ln, "", "")
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		s.stop()
		return fmt.Errorf("http: %w", err)
	case <-ctx.Done():
	}
	s.stop()
	sctx, cancel := context.WithTimeout(context.Background(), s.timeouts.shutdown)
	defer cancel()
	err := srv.Shutdown(sctx)
	if err != nil {
		srv.Close()
	}
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("http: shutdown: %w", err)
	}
	return nil
}

// stop ends waiting requests and what requests asked of the daemon, and logs the failed
// authentications not summarized yet.
func (s *Server) stop() {
	s.stopOnce.Do(func() {
		close(s.stopping)
		s.cancelBase()
		s.failures.flush()
	})
}

// detach returns the context for what r asks of the daemon, bounded by d. It is not r's own: Go
// cancels that when the client half-closes its side of the connection (shutdown(SHUT_WR) after
// sending the request), and such a client still reads the answer, which must then be the real
// one, not an empty 200 or "engine not reachable".
func (s *Server) detach(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(s.base, d)
}

// tlsConfig loads the key pair when both files are set; one without the other is a config error.
func (s *Server) tlsConfig() (*tls.Config, error) {
	cert, key := s.opts.TLSCert, s.opts.TLSKey
	switch {
	case cert == "" && key == "":
		return nil, nil
	case cert == "" || key == "":
		return nil, errors.New("http.tls_cert and http.tls_key must be set together")
	}
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		return nil, fmt.Errorf("http.tls_cert/http.tls_key: %w", err)
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{pair}}, nil
}
