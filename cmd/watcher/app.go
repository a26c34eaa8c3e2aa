package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/moby/moby/client"

	"github.com/watcher-dev/watcher/api"
	"github.com/watcher-dev/watcher/config"
	"github.com/watcher-dev/watcher/internal/engine"
	"github.com/watcher-dev/watcher/lifecycle"
	"github.com/watcher-dev/watcher/notify"
	"github.com/watcher-dev/watcher/registry"
	"github.com/watcher-dev/watcher/store"
	"github.com/watcher-dev/watcher/updater"
)

// app is the wiring: config, logger, and the parts each command needs.
type app struct {
	cfg      config.Config
	log      *slog.Logger
	engines  []engineConn   // one per host; one, named "", without hosts (hosts.go)
	docker   *engine.Client // the engine the watcher's own container is on (the first when none)
	store    *store.Store
	metrics  *api.Metrics
	events   *api.Events // the daemon's live feed (GET /v1/events); nil for once, check, rollback
	notify   *notify.Notifier
	upd      *updater.Updater
	selfID   string   // the watcher's own container, "" outside a container of these engines
	selfHost string   // the host selfID is on
	handoff  *handoff // the daemon's self-update state (handover.go); nil for once and check
	compat   compat   // what a Watchtower configuration asks of the updater (watchtower.go)
	// dockerOpts: the Docker connection a Watchtower command line gives (-H, --tlsverify), for
	// the one engine of DOCKER_HOST (docker.go).
	dockerOpts []client.Opt
}

// newApp wires what cmd needs; wt is a Watchtower command line (watchtower.go), or nil.
func newApp(ctx context.Context, cmd, configPath string, environ []string, wt *wtArgs, stderr io.Writer) (*app, error) {
	wtFlags := wt.configFlags()
	if cmd == "healthcheck" {
		// The image's HEALTHCHECK runs without the daemon's command line, so Watchtower settings
		// split between flags and variables may not stand alone; none of them moves the API.
		environ, wtFlags = withoutWatchtower(environ), nil
	}
	cfg, notices, err := loadConfig(configPath, environ, wtFlags)
	if err != nil {
		return nil, err
	}
	a := &app{cfg: cfg, log: newLogger(cfg.Log, stderr)}
	if a.compat, err = watchtowerCompat(environ, wt); err != nil {
		return nil, fail(exitUsage, "%v", err)
	}
	if cmd == "healthcheck" {
		return a, nil // every 30s in the image: the daemon has said it once
	}
	for _, w := range cfg.Warnings {
		a.log.Warn(w)
	}
	for _, n := range notices {
		a.log.Info("config: " + n)
	}
	if err := a.connect(ctx, cmd, environ, wtFlags); err != nil {
		a.close()
		return nil, err
	}
	a.upd = a.newUpdater()
	return a, nil
}

// loadConfig reads the config file named by --config, else $WATCHER_CONFIG, else the default
// path when it exists (else only defaults and the environment), with Watchtower's flags and
// variables beneath; notices are what the Watchtower layer wants said once.
func loadConfig(path string, environ []string, wtFlags []config.Flag) (config.Config, []string, error) {
	if path == "" {
		path = lookupEnv(environ, "WATCHER_CONFIG")
	}
	if path == "" {
		if _, err := os.Stat(config.DefaultPath); err == nil {
			path = config.DefaultPath
		}
	}
	cfg, notices, err := config.LoadWatchtower(path, environ, config.Watchtower{Flags: wtFlags, Legacy: notify.WatchtowerURLs})
	if err != nil {
		return cfg, nil, fail(exitUsage, "%v", err)
	}
	return cfg, notices, nil
}

// connect opens what the command needs besides the updater: the engine client, the state file
// (run and once; check changes nothing and needs none), metrics, notifications (run), and finds
// the watcher's own container.
func (a *app) connect(ctx context.Context, cmd string, environ []string, wtFlags []config.Flag) error {
	var warnings []string
	var err error
	if a.dockerOpts, warnings, err = dockerOptions(environ, wtFlags); err != nil {
		return fail(exitUsage, "%v", err)
	}
	for _, w := range warnings {
		a.log.Warn(w)
	}
	if err := a.connectEngines(); err != nil {
		return err
	}
	a.docker = a.engines[0].cli
	if cmd == "run" || cmd == "once" || cmd == "rollback" {
		wait := time.Duration(0)
		if cmd == "run" {
			wait = storeWait // a predecessor handing over may still hold it (handover.go)
		}
		if a.store, err = openStore(ctx, filepath.Join(a.cfg.StateDir, "watcher.db"), wait, a.log); err != nil {
			return storeError(cmd, a.cfg, err)
		}
	}
	a.metrics = api.NewHostMetrics(a.hostNames())
	if cmd == "run" {
		a.events = api.NewEvents()
	}
	if (cmd == "run" || cmd == "once" || cmd == "rollback") && len(a.cfg.Notify.URLs) > 0 {
		if a.notify, err = a.newNotifier(); err != nil {
			return fail(exitUsage, "%v", err)
		}
	}
	if err := a.ping(ctx); err == nil {
		a.detectSelf(ctx)
	}
	if cmd == "run" && a.selfID != "" {
		a.handoff = newHandoff()
	}
	return nil
}

// newNotifier sends run reports to notify.urls: the outcomes notify.on names, and each waiting
// update once (remembered in the state file).
func (a *app) newNotifier() (*notify.Notifier, error) {
	var on []updater.Outcome
	for _, o := range a.cfg.Notify.On {
		on = append(on, updater.Outcome(o))
	}
	o := notify.Options{URLs: a.cfg.Notify.URLs, Template: a.cfg.Notify.Template, Logger: a.log, OnResult: a.metrics.NotifyResult, On: on}
	if a.store != nil {
		o.Notices = a.store
	}
	return notify.New(o)
}

// storeError is the exit for a state file that cannot be opened. The daemon holds it while it
// runs: a rollback is then asked of the daemon instead.
func storeError(cmd string, cfg config.Config, err error) error {
	if cmd == "rollback" && errors.Is(err, store.ErrLocked) {
		return fail(exitUsage, "state_dir: %v; while the daemon runs, ask it: curl -X POST -H 'Authorization: Bearer <http.token>' http://%s/v1/rollback?container=NAME",
			err, strings.Replace(cfg.HTTP.Listen, ":", "localhost:", 1))
	}
	return fail(exitUsage, "state_dir: %v", err)
}

func (a *app) newChecker() *registry.Checker {
	auth := map[string]authn.AuthConfig{}
	for host, c := range a.cfg.Registry.Auth {
		auth[host] = authn.AuthConfig{Username: c.Username, Password: c.Password}
	}
	return registry.New(registry.Options{
		Concurrency: a.cfg.Registry.Concurrency,
		PerHost:     a.cfg.Registry.PerHost,
		Timeout:     a.cfg.Registry.Timeout,
		Auth:        auth,
		OnRequest:   a.metrics.RegistryRequest,
	})
}

// history is the state file as the updater's run history and last known states; nil without one.
func (a *app) history() updater.History {
	if a.store == nil {
		return nil
	}
	return a.store
}

func (a *app) updaterOptions() updater.Options {
	observers := []updater.Observer{a.metrics}
	if a.events != nil {
		observers = append(observers, a.events)
	}
	if a.notify != nil {
		observers = append(observers, a.notify)
	}
	var release func(context.Context, string) error
	if a.handoff != nil {
		release = a.release
	}
	cfg := a.cfg
	return updater.Options{
		Selection: updater.Selection{LabelEnable: cfg.Watch.LabelEnable, Scope: cfg.Watch.Scope,
			Names: a.compat.names, Exclude: a.compat.exclude},
		IncludeStopped:    cfg.Watch.IncludeStopped,
		IncludeRestarting: a.compat.includeRestarting,
		LifecycleHooks:    cfg.Update.LifecycleHooks,
		Defaults:          updater.Defaults{Mode: cfg.Update.Mode, Window: cfg.Windows(), Zone: cfg.Zone(), Approve: cfg.Update.Approve},
		NoRollback:        !cfg.Update.Rollback,
		Cleanup:           cfg.Update.Cleanup,
		Parallel:          cfg.Update.Parallel,
		SelfID:            a.selfID,
		SelfHost:          a.selfHost,
		Logger:            a.log,
		Observers:         observers,
		Release:           release,
		Schedule:          cfg.Schedule,
		KeepImages:        cfg.Update.KeepImages,
		Services:          cfg.Swarm.Services,
	}
}

func (a *app) close() {
	if a.notify != nil {
		a.notify.Close()
	}
	if a.store != nil {
		_ = a.store.Close()
	}
	for _, e := range a.engines {
		_ = e.cli.Close()
	}
}

// once runs one cycle now, after finishing any transaction a crash left behind.
func (a *app) once(ctx context.Context, out io.Writer, asJSON bool) error {
	if err := a.ping(ctx); err != nil {
		return a.engineError(err)
	}
	a.upd.Recover(ctx)
	rep := a.upd.Execute(ctx, "", updater.Request{Trigger: updater.TriggerOnce})
	if err := a.printReport(out, rep, asJSON); err != nil {
		return err
	}
	return runExit(rep, asJSON)
}

// rollback puts container name back on the image it ran before its last committed update, as a
// run of its own (after finishing any transaction a crash left behind), and prints its report.
// Exit codes as once: 1 also when there is nothing to roll back.
func (a *app) rollback(ctx context.Context, out io.Writer, host, name string, asJSON bool) error {
	if err := a.checkHost(host); err != nil {
		return err
	}
	if err := a.ping(ctx); err != nil {
		return a.engineError(err)
	}
	a.upd.SetContext(ctx)
	a.upd.Recover(ctx)
	id, done, err := a.upd.Rollback(ctx, host, name)
	var nw *updater.NotWatchedError
	var nr *updater.NoRollbackError
	switch {
	case errors.As(err, &nw):
		return fail(exitFailed, "%s is not a container this watcher watches (nothing was changed)", name)
	case errors.As(err, &nr):
		return fail(exitFailed, "%v (nothing was changed)", nr)
	case err != nil:
		return a.engineError(err)
	}
	<-done
	rep, err := a.upd.Run(id)
	if err != nil {
		return fail(exitFailed, "rollback %s: %v", id, err)
	}
	if err := a.printReport(out, rep, asJSON); err != nil {
		return err
	}
	if rep.Failed() || rep.Count(updater.OutcomeUpdated) == 0 {
		return fail(exitFailed, "")
	}
	return nil
}

// check is a dry run: it asks the registries and prints what would update and the plan a run
// would apply; it changes nothing (its updater has no lifecycle).
func (a *app) check(ctx context.Context, out io.Writer, asJSON bool) error {
	if err := a.ping(ctx); err != nil {
		return a.engineError(err)
	}
	rep := a.upd.Execute(ctx, "", updater.Request{Trigger: updater.TriggerCheck, DryRun: true})
	if err := a.printReport(out, rep, asJSON); err != nil {
		return err
	}
	if !asJSON && rep.Error == "" {
		printPlan(out, rep.Plan)
	}
	if err := runExit(rep, true); err != nil {
		return err
	}
	return nil
}

// daemon runs the schedule and the HTTP API until ctx ends (SIGTERM/SIGINT): API first (health
// answers while the engine is awaited), then the engine, recovery, the schedule, and the wait.
func (a *app) daemon(ctx context.Context) error {
	a.log.Info("watcher starting", "version", version, "schedule", a.cfg.Schedule, "mode", a.cfg.Update.Mode,
		"label_enable", a.cfg.Watch.LabelEnable, "scope", a.cfg.Watch.Scope, "state_dir", a.cfg.StateDir, "http", a.cfg.HTTP.Listen)
	httpErr, stopHTTP := a.serveAPI(ctx)
	defer stopHTTP()
	go releaseMemory(ctx, releaseInterval, a.log) // an idle daemon does not keep its last burst's heap (memory.go)
	if up, err := a.awaitEngine(ctx, httpErr); !up {
		return err
	}
	a.upd.SetContext(ctx)
	if stepBack, err := a.recoverFirst(ctx); stepBack {
		return err
	}
	go a.upd.WatchHosts(ctx, hostProbeInterval)
	// The daemon's runs read each host's containers from an inventory its engine's events keep
	// current, instead of listing them all every run (once and check list: they run once).
	go a.upd.FollowEvents(ctx)
	if a.notify != nil && a.cfg.Notify.Startup {
		a.notify.Startup(version)
	}
	sched, err := a.startSchedule(ctx)
	if err != nil {
		return err
	}
	successor, handedOver, err := a.awaitStop(ctx, httpErr)
	if handedOver {
		return a.handedOver(ctx, successor)
	}
	a.log.Info("stopping: no new update step starts; the one in flight finishes or is left for recovery")
	sched.Stop()
	a.upd.Wait()
	return err
}

// serveAPI starts the HTTP API; httpErr receives its end. stop shuts it down and waits for the
// listener to close (the handover uses it too).
func (a *app) serveAPI(ctx context.Context) (httpErr <-chan error, stop func()) {
	srv := api.New(a.upd, api.Options{
		Listen: a.cfg.HTTP.Listen, Token: a.cfg.HTTP.Token, PublicRead: a.cfg.HTTP.PublicRead, WebhookSecret: a.cfg.HTTP.WebhookSecret,
		TLSCert: a.cfg.HTTP.TLSCert, TLSKey: a.cfg.HTTP.TLSKey, RateLimit: a.cfg.HTTP.RateLimit,
		Logger: a.log, Metrics: a.metrics, Events: a.events, Version: version,
	})
	httpCtx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		errc <- srv.ListenAndServe(httpCtx)
	}()
	stop = func() { cancel(); <-done }
	if h := a.handoff; h != nil {
		h.stopHTTP = stop
	}
	return errc, stop
}

// awaitEngine waits for the engine to answer (a host booting may start it after the watcher):
// up is false when the daemon must return err instead (ctx ended, or the API failed).
func (a *app) awaitEngine(ctx context.Context, httpErr <-chan error) (up bool, err error) {
	for delay := time.Second; ; delay = min(delay*2, 30*time.Second) {
		err := a.ping(ctx)
		if err == nil {
			return true, nil
		}
		a.log.Error("docker engine unreachable; retrying (no container is touched meanwhile)", "err", strings.ReplaceAll(err.Error(), "\n", "; "), "retry_in", delay)
		select {
		case <-ctx.Done():
			return false, nil
		case err := <-httpErr:
			return false, fail(exitUsage, "http: %v", err)
		case <-time.After(delay):
		}
	}
}

// recoverFirst finishes what a crash left behind before anything else touches a container. When
// a self-update's successor runs, this process gives it the store and listener and waits:
// stepBack is true and err is what the daemon returns.
func (a *app) recoverFirst(ctx context.Context) (stepBack bool, err error) {
	for _, res := range a.upd.Recover(ctx) {
		if res.Outcome == lifecycle.OutcomeHandedOver && a.handoff != nil && res.OldID == a.selfID {
			return true, a.stepBack(ctx, res) // a self-update's successor runs (handover.go)
		}
	}
	return false, nil
}

// startSchedule starts the schedules: the schedule key's and each watched container's
// watcher.schedule label's, one cron entry per distinct schedule (updater.Scheduler).
func (a *app) startSchedule(ctx context.Context) (*updater.Scheduler, error) {
	if a.cfg.Schedule == "" {
		a.log.Info("no schedule: containers without a watcher.schedule label run only when triggered over HTTP")
	}
	if _, err := a.cfg.CronSchedule(); err != nil {
		return nil, fail(exitUsage, "schedule: %v", err)
	}
	sched := a.upd.NewScheduler(updater.SchedulerOptions{Before: func(ctx context.Context) error {
		if err := a.ping(ctx); err != nil {
			a.metrics.ScanSkipped() // watchtower_scans_skipped, as Watchtower counted a scan that could not run
			return fmt.Errorf("docker engine unreachable: %w", err)
		}
		return nil
	}})
	sched.Start(ctx)
	if h := a.handoff; h != nil {
		h.stopSchedule = sched.Stop
	}
	return sched, nil
}

// awaitStop waits for the daemon's end: ctx (SIGTERM), the API failing (err says how), or a
// handover (handedOver, with the successor's ID).
func (a *app) awaitStop(ctx context.Context, httpErr <-chan error) (successor string, handedOver bool, err error) {
	select {
	case <-ctx.Done():
	case err := <-httpErr:
		if err != nil {
			return "", false, fail(exitUsage, "http: %v", err)
		}
		if a.handoff != nil && ctx.Err() == nil {
			// Only a handover shuts the API down while the daemon runs: its release is
			// about to say so.
			select {
			case successor := <-a.handoff.done():
				return successor, true, nil
			case <-ctx.Done():
			}
		}
	case successor := <-a.handoff.done():
		return successor, true, nil
	}
	return "", false, nil
}

// healthcheck asks the running daemon's /healthz on this machine.
func (a *app) healthcheck(ctx context.Context, out io.Writer) error {
	if err := api.CheckHealth(ctx, a.cfg.HTTP.Listen, a.cfg.HTTP.TLSCert != ""); err != nil {
		return fail(exitFailed, "daemon not healthy: %v", err)
	}
	fmt.Fprintln(out, "ok")
	return nil
}

// printReport prints a run report as a table (or JSON), with a HOST column when more than one
// host is configured.
func (a *app) printReport(out io.Writer, rep *updater.Report, asJSON bool) error {
	return printReport(out, rep, asJSON, len(a.engines) > 1)
}

// printReport prints a run report as a table (or JSON).
func printReport(out io.Writer, rep *updater.Report, asJSON, hostColumn bool) error {
	if asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	if rep.Error != "" {
		fmt.Fprintf(out, "run %s failed: %s\n", rep.ID, rep.Error)
		return nil
	}
	for _, h := range rep.Hosts {
		if !h.Reachable {
			fmt.Fprintf(out, "host %s unreachable: %s\n", h.Name, oneLine(h.Error))
		}
	}
	if len(rep.Containers) == 0 {
		fmt.Fprintln(out, "no watched containers (label them watcher.enable=true)")
		return nil
	}
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	if hostColumn {
		fmt.Fprint(tw, "HOST\t")
	}
	fmt.Fprintln(tw, "NAME\tIMAGE\tOUTCOME\tDIGEST\tDETAIL")
	for _, c := range rep.Containers {
		digest := shortDigest(c.OldDigest)
		if c.NewDigest != "" && c.NewDigest != c.OldDigest {
			digest += " -> " + shortDigest(c.NewDigest)
		}
		detail := c.Message
		if c.Failure != nil {
			detail = strings.TrimSpace(fmt.Sprintf("%s/%s: %s", c.Failure.Stage, c.Failure.Reason, c.Failure.Message))
		}
		image := c.Image
		if c.NewImage != "" {
			image += " -> " + c.NewImage
		}
		if hostColumn {
			fmt.Fprintf(tw, "%s\t", c.Host)
		}
		name := c.Name
		if c.Kind == updater.KindService {
			name = "service " + name
			if r := c.Replicas; r != nil {
				detail = strings.TrimSpace(fmt.Sprintf("%d/%d tasks %s", r.Running, r.Desired, detail))
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", name, image, c.Outcome, digest, oneLine(detail))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	unreachable := ""
	if n := len(rep.Unreachable()); n > 0 {
		unreachable = fmt.Sprintf(", %d of %d hosts unreachable", n, len(rep.Hosts))
	}
	targets := fmt.Sprintf("%d containers", len(rep.Containers))
	if n := countServices(rep); n > 0 {
		targets = fmt.Sprintf("%d containers, %d services", len(rep.Containers)-n, n)
	}
	fmt.Fprintf(out, "run %s: %s, %d updated, %d up to date, %d failed, %d rolled back%s, %s\n", rep.ID, targets,
		rep.Count(updater.OutcomeUpdated), rep.Count(updater.OutcomeUpToDate), rep.Count(updater.OutcomeFailed), rep.Count(updater.OutcomeRolledBack),
		unreachable, rep.FinishedAt.Sub(rep.StartedAt).Round(time.Millisecond))
	return nil
}

// countServices counts the report's lines of Swarm services.
func countServices(rep *updater.Report) int {
	n := 0
	for _, c := range rep.Containers {
		if c.Kind == updater.KindService {
			n++
		}
	}
	return n
}

// printPlan prints the plan a run would apply, as the plan tests print it.
func printPlan(out io.Writer, plan *updater.Plan) {
	if plan == nil {
		fmt.Fprintln(out, "\nplan: nothing to do")
		return
	}
	fmt.Fprintf(out, "\nplan (nothing was changed):\n%s", plan)
}

func shortDigest(d string) string {
	if d == "" {
		return "-"
	}
	d = strings.TrimPrefix(d, "sha256:")
	if len(d) > 12 {
		d = d[:12]
	}
	return d
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 160 {
		s = s[:157] + "..."
	}
	return s
}

func newLogger(c config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func lookupEnv(environ []string, key string) string {
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			return v
		}
	}
	return ""
}
