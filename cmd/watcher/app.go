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

	"github.com/watcher-dev/watcher/failure"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/moby/moby/client"
	"github.com/robfig/cron/v3"

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
	cfg     config.Config
	log     *slog.Logger
	docker  *client.Client
	store   *store.Store
	metrics *api.Metrics
	notify  *notify.Notifier
	upd     *updater.Updater
	selfID  string   // the watcher's own container, "" outside a container of this engine
	handoff *handoff // the daemon's self-update state (handover.go); nil for once and check
}

func newApp(ctx context.Context, cmd, configPath string, environ []string, wtFlags []config.Flag, stderr io.Writer) (*app, error) {
	path := configPath
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
		return nil, fail(exitUsage, "%v", err)
	}
	a := &app{cfg: cfg, log: newLogger(cfg.Log, stderr)}
	if cmd == "healthcheck" {
		return a, nil
	}
	dockerOpts, warnings, err := dockerOptions(environ, wtFlags)
	if err != nil {
		return nil, fail(exitUsage, "%v", err)
	}
	for _, n := range notices {
		a.log.Info("config: " + n)
	}
	for _, w := range warnings {
		a.log.Warn(w)
	}
	a.docker, err = engine.Connect(dockerOpts...)
	if err != nil {
		return nil, fail(exitUsage, "docker client: %v", err)
	}
	if cmd == "run" || cmd == "once" {
		dbPath := filepath.Join(cfg.StateDir, "watcher.db")
		wait := time.Duration(0)
		if cmd == "run" {
			wait = storeWait // a predecessor handing over may still hold it (handover.go)
		}
		a.store, err = openStore(ctx, dbPath, wait, a.log)
		if err != nil {
			a.close()
			return nil, fail(exitUsage, "state_dir: %v", err)
		}
	}
	a.metrics = api.NewMetrics()
	if cmd == "run" && len(cfg.Notify.URLs) > 0 {
		a.notify, err = notify.New(notify.Options{URLs: cfg.Notify.URLs, Template: cfg.Notify.Template, Logger: a.log, OnResult: a.metrics.NotifyResult})
		if err != nil {
			a.close()
			return nil, fail(exitUsage, "%v", err)
		}
	}

	auth := map[string]authn.AuthConfig{}
	for host, c := range cfg.Registry.Auth {
		auth[host] = authn.AuthConfig{Username: c.Username, Password: c.Password}
	}
	checker := registry.New(registry.Options{
		Concurrency: cfg.Registry.Concurrency,
		PerHost:     cfg.Registry.PerHost,
		Timeout:     cfg.Registry.Timeout,
		Auth:        auth,
		OnRequest:   a.metrics.RegistryRequest,
	})
	if err := a.ping(ctx); err == nil {
		a.selfID = updater.DetectSelf(ctx, a.docker)
	}
	var life updater.Replacer = noReplacer{}
	if a.store != nil {
		life = lifecycle.New(a.docker, a.store, lifecycle.Options{
			StopTimeout: cfg.Update.StopTimeout, Verify: cfg.Update.Verify, HealthTimeout: cfg.Update.HealthTimeout, Logger: a.log,
			SelfID: a.selfID,
			SelfCheck: func(ctx context.Context) error {
				return api.CheckHealth(ctx, cfg.HTTP.Listen, cfg.HTTP.TLSCert != "")
			},
		})
	}
	var release func(context.Context, string) error
	if cmd == "run" && a.selfID != "" {
		a.handoff = newHandoff()
		release = a.release
	}
	observers := []updater.Observer{a.metrics}
	if a.notify != nil {
		observers = append(observers, a.notify)
	}
	var history updater.History
	if a.store != nil {
		history = a.store
	}
	a.upd = updater.New(a.docker, checker, life, history, updater.Options{
		Selection:      updater.Selection{LabelEnable: cfg.Watch.LabelEnable, Scope: cfg.Watch.Scope},
		IncludeStopped: cfg.Watch.IncludeStopped,
		Defaults:       updater.Defaults{Mode: cfg.Update.Mode, StopTimeout: cfg.Update.StopTimeout, Verify: cfg.Update.Verify, HealthTimeout: cfg.Update.HealthTimeout},
		Rollback:       cfg.Update.Rollback,
		Cleanup:        cfg.Update.Cleanup,
		Parallel:       cfg.Update.Parallel,
		SelfID:         a.selfID,
		Logger:         a.log,
		Observers:      observers,
		Release:        release,
	})
	return a, nil
}

func (a *app) close() {
	if a.notify != nil {
		a.notify.Close()
	}
	if a.store != nil {
		_ = a.store.Close()
	}
	if a.docker != nil {
		_ = a.docker.Close()
	}
}

// ping asks the engine for its API version and negotiates down to it. ForceNegotiate makes every
// call re-read the engine's version, so an engine upgraded underneath a running daemon is seen.
func (a *app) ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := a.docker.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true, ForceNegotiate: true})
	return err
}

func (a *app) engineError(err error) error {
	return fail(exitUnreachable, "docker engine unreachable at %s: %v (nothing was changed)", a.docker.DaemonHost(), err)
}

// once runs one cycle now, after finishing any transaction a crash left behind.
func (a *app) once(ctx context.Context, out io.Writer, asJSON bool) error {
	if err := a.ping(ctx); err != nil {
		return a.engineError(err)
	}
	a.upd.Recover(ctx)
	rep := a.upd.Execute(ctx, "", updater.Request{Trigger: "once"})
	if err := printReport(out, rep, asJSON); err != nil {
		return err
	}
	if rep.Error != "" && !asJSON {
		return fail(exitFailed, "%s", rep.Error)
	}
	if rep.Failed() {
		return fail(exitFailed, "")
	}
	return nil
}

// check is a dry run: it asks the registries and prints what would update; it changes nothing.
func (a *app) check(ctx context.Context, out io.Writer, asJSON bool) error {
	if err := a.ping(ctx); err != nil {
		return a.engineError(err)
	}
	rep := a.upd.Execute(ctx, "", updater.Request{Trigger: "check", DryRun: true})
	if err := printReport(out, rep, asJSON); err != nil {
		return err
	}
	if rep.Failed() {
		return fail(exitFailed, "")
	}
	return nil
}

// daemon runs the schedule and the HTTP API until ctx ends (SIGTERM/SIGINT).
func (a *app) daemon(ctx context.Context) error {
	a.log.Info("watcher starting", "version", version, "schedule", a.cfg.Schedule, "mode", a.cfg.Update.Mode,
		"label_enable", a.cfg.Watch.LabelEnable, "scope", a.cfg.Watch.Scope, "state_dir", a.cfg.StateDir, "http", a.cfg.HTTP.Listen)
	srv := api.New(a.upd, api.Options{
		Listen: a.cfg.HTTP.Listen, Token: a.cfg.HTTP.Token, PublicRead: a.cfg.HTTP.PublicRead,
		TLSCert: a.cfg.HTTP.TLSCert, TLSKey: a.cfg.HTTP.TLSKey, RateLimit: a.cfg.HTTP.RateLimit,
		Logger: a.log, Metrics: a.metrics,
	})
	httpCtx, stopHTTP := context.WithCancel(ctx)
	defer stopHTTP()
	httpErr := make(chan error, 1)
	httpDone := make(chan struct{})
	go func() {
		defer close(httpDone)
		httpErr <- srv.ListenAndServe(httpCtx)
	}()
	if h := a.handoff; h != nil {
		h.stopHTTP = func() { stopHTTP(); <-httpDone }
	}

	// The engine may not be up yet (a host booting): wait for it, then finish what a crash left
	// behind before anything else touches a container.
	for delay := time.Second; ; delay = min(delay*2, 30*time.Second) {
		err := a.ping(ctx)
		if err == nil {
			break
		}
		a.log.Error("docker engine unreachable; retrying (no container is touched meanwhile)", "host", a.docker.DaemonHost(), "err", err, "retry_in", delay)
		select {
		case <-ctx.Done():
			return nil
		case err := <-httpErr:
			return fail(exitUsage, "http: %v", err)
		case <-time.After(delay):
		}
	}
	a.upd.SetContext(ctx)
	for _, res := range a.upd.Recover(ctx) {
		if res.Outcome == lifecycle.OutcomeHandedOver && a.handoff != nil && res.OldID == a.selfID {
			// A self-update's successor runs: give it the store and listener, and wait.
			if err := a.release(ctx, res.NewID); err != nil {
				return fail(exitFailed, "self-update: stepping back for the successor: %v", err)
			}
			return a.handedOver(ctx, <-a.handoff.done())
		}
	}
	if a.notify != nil && a.cfg.Notify.Startup {
		a.notify.Startup(version)
	}

	var sched *cron.Cron
	if spec := a.cfg.Schedule; spec != "" {
		schedule, err := a.cfg.CronSchedule()
		if err != nil {
			return fail(exitUsage, "schedule: %v", err)
		}
		sched = cron.New()
		sched.Schedule(schedule, cron.FuncJob(func() {
			if err := a.ping(ctx); err != nil {
				a.log.Error("scheduled run skipped: docker engine unreachable", "err", err)
				return
			}
			if _, _, err := a.upd.Trigger(ctx, updater.Request{Trigger: "schedule"}); err != nil {
				a.log.Error("scheduled run not started", "err", err)
			}
		}))
		sched.Start()
		if h := a.handoff; h != nil {
			h.stopSchedule = func() { <-sched.Stop().Done() }
		}
		a.log.Info("schedule active", "schedule", spec, "next", schedule.Next(time.Now()).Format(time.RFC3339))
	} else {
		a.log.Info("no schedule: runs only when triggered over HTTP")
	}

	var err error
	select {
	case <-ctx.Done():
	case err = <-httpErr:
		if err != nil {
			err = fail(exitUsage, "http: %v", err)
		} else if a.handoff != nil && ctx.Err() == nil {
			// Only a handover shuts the API down while the daemon runs: its release is
			// about to say so.
			select {
			case successor := <-a.handoff.done():
				return a.handedOver(ctx, successor)
			case <-ctx.Done():
			}
		}
	case successor := <-a.handoff.done():
		return a.handedOver(ctx, successor)
	}
	a.log.Info("stopping: no new update step starts; the one in flight finishes or is left for recovery")
	if sched != nil {
		<-sched.Stop().Done()
	}
	a.upd.Wait()
	return err
}

// healthcheck asks the running daemon's /healthz on this machine.
func (a *app) healthcheck(ctx context.Context, out io.Writer) error {
	if err := api.CheckHealth(ctx, a.cfg.HTTP.Listen, a.cfg.HTTP.TLSCert != ""); err != nil {
		return fail(exitFailed, "daemon not healthy: %v", err)
	}
	fmt.Fprintln(out, "ok")
	return nil
}

// printReport prints a run report as a table (or JSON).
func printReport(out io.Writer, rep *updater.Report, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	if rep.Error != "" {
		fmt.Fprintf(out, "run %s failed: %s\n", rep.ID, rep.Error)
		return nil
	}
	if len(rep.Containers) == 0 {
		fmt.Fprintln(out, "no watched containers (label them watcher.enable=true)")
		return nil
	}
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
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
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.Name, image, c.Outcome, digest, oneLine(detail))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(out, "run %s: %d containers, %d updated, %d up to date, %d failed, %d rolled back, %s\n", rep.ID, len(rep.Containers),
		rep.Count(updater.OutcomeUpdated), rep.Count(updater.OutcomeUpToDate), rep.Count(updater.OutcomeFailed), rep.Count(updater.OutcomeRolledBack),
		rep.FinishedAt.Sub(rep.StartedAt).Round(time.Millisecond))
	return nil
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

// noReplacer stands in for lifecycle where a command must not change anything (check).
type noReplacer struct{}

var errDryRun = errors.New("dry run: nothing is changed")

func (noReplacer) Replace(_ context.Context, s lifecycle.Spec) lifecycle.Result {
	return lifecycle.Result{Outcome: lifecycle.OutcomeFailed, Err: dryRunError(s.ContainerID)}
}
func (noReplacer) Restart(_ context.Context, id string, _ string, _ *time.Duration) *lifecycle.Error {
	return dryRunError(id)
}

func dryRunError(id string) *lifecycle.Error {
	return &lifecycle.Error{ContainerID: id, Stage: failure.StagePlan, Reason: failure.Unsupported, Message: errDryRun.Error(), Err: errDryRun}
}
func (noReplacer) Recover(context.Context) []lifecycle.Result { return nil }
