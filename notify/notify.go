package notify

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"text/template"
	"time"

	"github.com/nicholas-fedor/shoutrrr/pkg/router"
	"github.com/nicholas-fedor/shoutrrr/pkg/types"

	"github.com/watcher-dev/watcher/updater"
)

// Defaults.
const (
	DefaultTimeout = 10 * time.Second // one send to one URL
	queueSize      = 16               // messages waiting while earlier ones are sent
	maxHanging     = 4                // sends per URL abandoned after a timeout but not yet returned
)

// Errors given to Options.OnResult (wrapped with which URL, never the URL itself).
var (
	ErrTimeout    = errors.New("no answer in time")
	ErrSendFailed = errors.New("send failed")
	ErrQueueFull  = errors.New("too many notifications waiting; dropped")
	ErrHanging    = errors.New("earlier sends still hanging; dropped")
)

// Options configure a Notifier; URLs and Template mirror notify.urls and notify.template.
type Options struct {
	URLs     []string      // shoutrrr URLs; none = a Notifier that sends nothing
	Template string        // Go text/template over *updater.Report; "" = DefaultTemplate
	Logger   *slog.Logger  // send failures are logged at Warn, with the URL redacted
	OnResult func(error)   // called once per URL per message, nil on success (e.g. Metrics.NotifyResult)
	Timeout  time.Duration // bounds one send to one URL; the default is DefaultTimeout
	// On lists the outcomes whose lines are sent (notify.on); nil = all but up_to_date. A run
	// that failed as a whole is sent when failed is among them.
	On []updater.Outcome
	// Notices remembers what was told about each waiting update (store.Store), so that it is
	// told once across restarts; nil = for this process's life only.
	Notices Notices
}

// Notices keeps the notices of waiting updates (updater.ContainerReport.Notice) by container.
type Notices interface {
	PutNotice(key string, data []byte) error // nil data forgets key
	Notices() (map[string][]byte, error)
}

// sender delivers one message to one destination: a shoutrrr router with one service.
type sender interface {
	Send(message string, params *types.Params) []error
}

// dest is one notify.urls entry.
type dest struct {
	name    string   // "notify.urls[2] (slack://…)": safe to log
	secrets []string // parts of the URL to mask in error texts
	s       sender
	hanging chan struct{} // a slot per send in flight; full = the receiver hangs, stop piling on
}

// message is one rendered report. told are the notices it carries: when no destination takes
// it, they are forgotten again, so that the next run tells them.
type message struct {
	title, text string
	told        map[string]string // container -> notice
}

// Notifier sends run reports to the configured URLs on its own goroutine. It implements
// updater.Observer. Close it to flush.
type Notifier struct {
	dests    []*dest
	tmpl     *template.Template
	log      *slog.Logger
	onResult func(error)
	timeout  time.Duration
	host     string
	on       map[updater.Outcome]bool
	notices  *onceNotices

	mu      sync.Mutex
	closed  bool
	queue   chan message
	stopped chan struct{} // closed when the sending goroutine has ended
	abandon chan struct{} // closed when Close gave up waiting: drop what is left
	once    sync.Once
}

var _ updater.Observer = (*Notifier)(nil)

// New checks every URL and the template and starts the sending goroutine. An error names the
// bad entry as notify.urls[i] with only the URL's scheme, or notify.template; it never holds the
// URL's secrets.
func New(o Options) (*Notifier, error) {
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	dests := make([]*dest, 0, len(o.URLs))
	for i, raw := range o.URLs {
		name := fmt.Sprintf("notify.urls[%d] (%s)", i, redact(raw))
		if strings.TrimSpace(raw) == "" {
			return nil, fmt.Errorf("notify.urls[%d]: empty URL", i)
		}
		r, err := router.New(nil, raw)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, urlProblem(raw, err))
		}
		// Our own timeout (in send) fires first; the router's is only a backstop.
		r.Timeout = 2 * timeout
		dests = append(dests, &dest{name: name, secrets: secretParts(raw), s: r, hanging: make(chan struct{}, maxHanging)})
	}
	return newNotifier(o, dests, timeout)
}

func newNotifier(o Options, dests []*dest, timeout time.Duration) (*Notifier, error) {
	host, _ := os.Hostname()
	if host == "" {
		host = "unknown host"
	}
	text := o.Template
	if text == "" {
		text = DefaultTemplate
	}
	tmpl, err := parseTemplate(text, host)
	if err != nil {
		return nil, fmt.Errorf("notify.template: %w", err)
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n := &Notifier{
		dests: dests, tmpl: tmpl, log: log, onResult: o.OnResult, timeout: timeout, host: host,
		on: outcomesOn(o.On), notices: loadNotices(o.Notices, log),
		queue: make(chan message, queueSize), stopped: make(chan struct{}), abandon: make(chan struct{}),
	}
	go n.loop()
	return n, nil
}

// urlProblem says what is wrong with a URL using shoutrrr's error kinds only (errors.Is still
// matches them): shoutrrr's own messages may quote the URL.
func urlProblem(raw string, err error) error {
	s, _, found := strings.Cut(raw, "://")
	if i := strings.IndexByte(s, '+'); i >= 0 {
		s = s[:i]
	}
	var kind error
	msg := "invalid notification URL"
	switch {
	case !found || !scheme.MatchString(s) || errors.Is(err, router.ErrParseURLFailed):
		kind, msg = router.ErrParseURLFailed, "not a URL (want service://…, see shoutrrr's docs)"
	case errors.Is(err, router.ErrUnknownService):
		kind, msg = router.ErrUnknownService, fmt.Sprintf("unknown service %q", s)
	case errors.Is(err, router.ErrCustomURLsNotSupported):
		kind, msg = router.ErrCustomURLsNotSupported, fmt.Sprintf("the %q service takes no custom (%s+…) URL", s, s)
	case errors.Is(err, router.ErrCustomURLConversion), errors.Is(err, router.ErrInitializeFailed):
		kind, msg = router.ErrInitializeFailed, fmt.Sprintf("the %q service refused the URL; check its form in shoutrrr's docs", s)
	}
	return &urlError{msg: msg, kind: kind}
}

// urlError is a bad URL: our message, shoutrrr's error kind.
type urlError struct {
	msg  string
	kind error
}

func (e *urlError) Error() string { return e.msg }
func (e *urlError) Unwrap() error { return e.kind }

// RunFinished queues one message with the run's lines worth sending (see selectLines), and
// returns at once; a run with none sends nothing. The message is rendered here, so the caller
// may reuse r afterwards.
func (n *Notifier) RunFinished(r *updater.Report) {
	if n == nil || r == nil || len(n.dests) == 0 {
		return
	}
	r, told := n.selectLines(r)
	if r == nil {
		return
	}
	text, err := render(n.tmpl, r)
	if err != nil {
		n.log.Error("notify: template failed; sending the default message", "run_id", r.ID, "err", err)
		def, _ := parseTemplate(DefaultTemplate, n.host)
		if text, err = render(def, r); err != nil {
			text = title(r)
		}
	}
	n.enqueue(message{title: title(r), text: text, told: told})
}

// Startup queues a "watcher started" message; the daemon calls it only when asked to.
func (n *Notifier) Startup(version string) {
	if n == nil || len(n.dests) == 0 {
		return
	}
	n.enqueue(message{title: "watcher started", text: fmt.Sprintf("watcher %s started on %s", version, n.host)})
}

func (n *Notifier) enqueue(m message) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		n.notices.forget(m.told)
		n.log.Warn("notify: closed; message dropped", "title", m.title)
		return
	}
	select {
	case n.queue <- m:
	default:
		n.notices.forget(m.told)
		n.log.Warn("notify: queue full; message dropped", "title", m.title)
		for _, d := range n.dests {
			n.result(d, ErrQueueFull)
		}
	}
}

// Close stops taking messages and waits for the queued ones, at most Timeout (plus a second).
// It is safe to call more than once.
func (n *Notifier) Close() {
	if n == nil {
		return
	}
	n.once.Do(func() {
		n.mu.Lock()
		n.closed = true
		close(n.queue)
		n.mu.Unlock()
		select {
		case <-n.stopped:
		case <-time.After(n.timeout + time.Second):
			close(n.abandon)
			n.log.Warn("notify: gave up waiting for notifications on close", "waited", n.timeout+time.Second)
		}
	})
}

func (n *Notifier) loop() {
	defer close(n.stopped)
	for m := range n.queue {
		select {
		case <-n.abandon:
			continue
		default:
		}
		var wg sync.WaitGroup
		var delivered atomic.Bool
		for _, d := range n.dests {
			wg.Go(func() {
				err := n.send(d, m)
				if err == nil {
					delivered.Store(true)
				}
				n.result(d, err)
			})
		}
		wg.Wait()
		if !delivered.Load() {
			n.notices.forget(m.told)
		}
	}
}

// send delivers m to d within the timeout. shoutrrr's senders take no context, so a send that
// times out is left running; at most maxHanging per URL, after which new ones are dropped.
func (n *Notifier) send(d *dest, m message) error {
	select {
	case d.hanging <- struct{}{}:
	default:
		return ErrHanging
	}
	done := make(chan error, 1)
	go func() {
		defer func() { <-d.hanging }()
		defer func() {
			if v := recover(); v != nil {
				done <- fmt.Errorf("%w: sender panicked", ErrSendFailed)
			}
		}()
		params := types.Params{types.TitleKey: m.title}
		done <- errors.Join(d.s.Send(m.text, &params)...)
	}()
	t := time.NewTimer(n.timeout)
	defer t.Stop()
	select {
	case err := <-done:
		if err != nil {
			return &sendError{kind: ErrSendFailed, detail: scrub(err.Error(), d.secrets)}
		}
		return nil
	case <-t.C:
		return &sendError{kind: ErrTimeout, detail: "after " + n.timeout.String()}
	}
}

func (n *Notifier) result(d *dest, err error) {
	if err != nil {
		err = fmt.Errorf("%s: %w", d.name, err)
		n.log.Warn("notify: not delivered", "err", err.Error())
	} else {
		n.log.Debug("notify: delivered", "to", d.name)
	}
	if n.onResult != nil {
		n.onResult(err)
	}
}

// sendError is a failed send: its kind for errors.Is and a scrubbed detail. The original error is
// not kept: its text holds the URL.
type sendError struct {
	kind   error
	detail string
}

func (e *sendError) Error() string { return e.kind.Error() + ": " + e.detail }
func (e *sendError) Unwrap() error { return e.kind }
