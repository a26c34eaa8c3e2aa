package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/client"

	"github.com/watcher-dev/watcher/api"
	"github.com/watcher-dev/watcher/config"
	"github.com/watcher-dev/watcher/internal/engine"
	"github.com/watcher-dev/watcher/lifecycle"
	"github.com/watcher-dev/watcher/swarm"
	"github.com/watcher-dev/watcher/updater"
)

// hostProbeInterval is how often the daemon asks an engine that stopped answering whether it is
// back, to finish the updates it left unfinished without waiting for the next run.
const hostProbeInterval = 10 * time.Second

// engineConn is one engine the command talks to: a hosts entry, or (without hosts) the engine of
// DOCKER_HOST, named "".
type engineConn struct {
	name string
	cli  *engine.Client
	cfg  config.Host // the hosts entry (zero without hosts)
}

// connectEngines makes a client per engine. Nothing is asked of an engine yet: a host that is
// down at start is reported by the runs, and never stops the others.
func (a *app) connectEngines() error {
	if len(a.cfg.Hosts) == 0 {
		cli, err := engine.Connect(a.dockerOpts...)
		if err != nil {
			return fail(exitUsage, "docker client: %v", err)
		}
		a.engines = []engineConn{{cli: cli}}
		return nil
	}
	for _, h := range a.cfg.Hosts {
		cli, err := engine.ConnectTo(engine.Target{Host: h.Host, TLS: h.TLS, CAFile: h.TLSCAFile, CertFile: h.TLSCertFile, KeyFile: h.TLSKeyFile, Verify: h.TLSVerify})
		if err != nil {
			return fail(exitUsage, "config: hosts.%s: %v", h.Name, err)
		}
		a.engines = append(a.engines, engineConn{name: h.Name, cli: cli, cfg: h})
	}
	return nil
}

// hostNames are the configured hosts' names (none without hosts).
func (a *app) hostNames() []string {
	var out []string
	for _, e := range a.engines {
		if e.name != "" {
			out = append(out, e.name)
		}
	}
	return out
}

// ping asks every engine for its API version (all at once, each within 10s), negotiating down to
// it; ForceNegotiate makes every call re-read the engine's version, so an engine upgraded
// underneath a running daemon is seen. It fails only when no engine answers.
func (a *app) ping(ctx context.Context) error {
	errs := make([]error, len(a.engines))
	var wg sync.WaitGroup
	for i, e := range a.engines {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			_, errs[i] = e.cli.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true, ForceNegotiate: true})
		})
	}
	wg.Wait()
	var failed []error
	for i, err := range errs {
		if err == nil {
			return nil
		}
		failed = append(failed, a.engineErr(a.engines[i], err))
	}
	return errors.Join(failed...)
}

// engineErr names the engine an error is about.
func (a *app) engineErr(e engineConn, err error) error {
	if e.name == "" {
		return fmt.Errorf("at %s: %w", e.cli.DaemonHost(), err)
	}
	return fmt.Errorf("%s (%s): %w", e.name, e.cfg.Host, err)
}

// engineError is the exit of once and check when no engine answers.
func (a *app) engineError(err error) error {
	msg := strings.ReplaceAll(err.Error(), "\n", "; ")
	if len(a.engines) == 1 && a.engines[0].name == "" {
		return fail(exitUnreachable, "docker engine unreachable %s (nothing was changed)", msg)
	}
	return fail(exitUnreachable, "no docker engine reachable: %s (nothing was changed)", msg)
}

// detectSelf finds the watcher's own container on whichever engine runs it.
func (a *app) detectSelf(ctx context.Context) {
	for _, e := range a.engines {
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		id := updater.DetectSelf(dctx, e.cli)
		cancel()
		if id != "" {
			a.selfID, a.selfHost, a.docker = id, e.name, e.cli
			return
		}
	}
}

// newUpdater wires the updater: one host per engine, each with its own transaction manager and
// Swarm service updater over its part of the journal (none for check), sharing the registry
// checker and the history.
func (a *app) newUpdater() *updater.Updater {
	hosts := make([]updater.Host, len(a.engines))
	for i, e := range a.engines {
		hosts[i] = updater.Host{Name: e.name, Engine: e.cli, Life: a.newLifecycle(e)}
		if a.store != nil {
			hosts[i].Services = swarm.New(e.cli, a.store, swarm.Options{Host: e.name, Timeout: a.cfg.Update.ServiceTimeout, Logger: a.log})
		}
		if e.name != "" {
			hosts[i].Selection = &updater.Selection{LabelEnable: a.cfg.Watch.LabelEnable, Scope: e.cfg.Scope}
		}
	}
	return updater.NewHosts(hosts, a.newChecker(), a.history(), a.updaterOptions())
}

// newLifecycle is the transaction manager of one engine over the state file's journal; nil
// without a state file (check), which makes an updater that only checks.
func (a *app) newLifecycle(e engineConn) updater.Replacer {
	if a.store == nil {
		return nil
	}
	cfg := a.cfg
	return lifecycle.New(e.cli, a.store, lifecycle.Options{
		StopTimeout: cfg.Update.StopTimeout, Verify: cfg.Update.Verify, HealthTimeout: cfg.Update.HealthTimeout, Logger: a.log,
		SelfID: a.selfID, Host: e.name,
		SelfCheck: func(ctx context.Context) error {
			return api.CheckHealth(ctx, cfg.HTTP.Listen, cfg.HTTP.TLSCert != "")
		},
	})
}

// checkHost validates rollback's --host against the configured hosts: without hosts there is the
// one engine of DOCKER_HOST and --host must be left out.
func (a *app) checkHost(host string) error {
	names := a.hostNames()
	switch {
	case host == "" || slices.Contains(names, host):
		return nil
	case len(names) == 0:
		return fail(exitUsage, "--host %q: no hosts are configured; the one engine of DOCKER_HOST is used, leave --host out", host)
	}
	return fail(exitUsage, "--host %q: not one of the configured hosts (%s)", host, strings.Join(names, ", "))
}

// runExit is the exit of once and check after a run: 3 when no host answered (nothing was
// changed), 1 when anything failed, a host included.
func runExit(rep *updater.Report, asJSON bool) error {
	if rep.Error != "" && len(rep.Hosts) > 0 && len(rep.Unreachable()) == len(rep.Hosts) {
		msg := ""
		if !asJSON {
			msg = rep.Error + " (nothing was changed)"
		}
		return fail(exitUnreachable, "%s", msg)
	}
	if rep.Error != "" && !asJSON {
		return fail(exitFailed, "%s", rep.Error)
	}
	if rep.Failed() {
		return fail(exitFailed, "")
	}
	return nil
}
