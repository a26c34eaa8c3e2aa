package updater

import (
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/watcher-dev/watcher/internal/schedule"
)

// DefaultResync is how often a Scheduler looks for watcher.schedule labels of containers that
// came or went.
const DefaultResync = time.Minute

// SchedulerOptions configure a Scheduler.
type SchedulerOptions struct {
	// Before runs before each scheduled trigger; an error skips that tick (the daemon pings the
	// engine there). Nil = nothing.
	Before func(ctx context.Context) error
	Resync time.Duration // default DefaultResync
}

// Scheduler triggers the daemon's scheduled runs: one cron entry per distinct schedule, the
// schedule key's (Options.Schedule) and each watcher.schedule label's. A tick asks for a run of
// the containers on that schedule (Request.Schedules); ticks that come while a run is in
// progress join the one queued run like any trigger, and each run asks the registry once per
// image. Containers come and go: the labels are read again every Resync.
type Scheduler struct {
	u    *Updater
	o    SchedulerOptions
	cron *cron.Cron
	stop chan struct{}
	done chan struct{}

	mu      sync.Mutex
	entries map[string]cron.EntryID // by spec
}

// NewScheduler returns a Scheduler for u; it does nothing until Start.
func (u *Updater) NewScheduler(o SchedulerOptions) *Scheduler {
	if o.Resync <= 0 {
		o.Resync = DefaultResync
	}
	s := &Scheduler{u: u, o: o, cron: cron.New(), stop: make(chan struct{}), done: make(chan struct{}), entries: map[string]cron.EntryID{}}
	u.mu.Lock()
	u.sched = s
	u.mu.Unlock()
	return s
}

// Status is what the daemon is doing and will do next, as GET /v1/status shows it.
type Status struct {
	Running  string    `json:"running,omitempty"`  // the id of the run in progress
	Queued   string    `json:"queued,omitempty"`   // the id of the run queued after it
	Schedule string    `json:"schedule,omitempty"` // the schedule key ("" = none)
	NextRun  time.Time `json:"next_run,omitzero"`  // the next tick of any schedule (zero: none)
}

// Status returns the runs in progress and queued, and when a schedule fires next.
func (u *Updater) Status() Status {
	u.mu.Lock()
	st := Status{Schedule: u.opts.Schedule}
	if u.running != nil {
		st.Running = u.running.id
	}
	if u.queued != nil {
		st.Queued = u.queued.id
	}
	sched := u.sched
	u.mu.Unlock()
	if sched != nil {
		for _, next := range sched.Next() {
			if !next.IsZero() && (st.NextRun.IsZero() || next.Before(st.NextRun)) {
				st.NextRun = next
			}
		}
	}
	return st
}

// Start registers the schedules the containers have now and starts the clock; ctx is what the
// triggered runs are asked under (see Updater.SetContext for what they run under).
func (s *Scheduler) Start(ctx context.Context) {
	s.sync(ctx)
	s.cron.Start()
	go func() {
		defer close(s.done)
		t := time.NewTicker(s.o.Resync)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				s.sync(ctx)
			case <-s.stop:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
}

// Stop stops the clock and waits for a tick being handled to finish (not for the run it asked for).
func (s *Scheduler) Stop() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
	<-s.cron.Stop().Done()
}

// Next returns each registered schedule with when it fires next.
func (s *Scheduler) Next() map[string]time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]time.Time{}
	for spec, id := range s.entries {
		out[spec] = s.cron.Entry(id).Next
	}
	return out
}

// sync makes the cron entries those of the schedules in use: the daemon's, and every valid
// watcher.schedule label of a watched container, on every host. While a host cannot be listed the
// entries stay as they are.
func (s *Scheduler) sync(ctx context.Context) {
	want := map[string]bool{}
	if g := s.u.opts.Schedule; g != "" {
		want[g] = true
	}
	for _, v := range s.u.listHosts(ctx, s.u.hosts, false) {
		if v.err != nil {
			s.u.log.Warn("could not read the containers' schedules; keeping the ones registered", "host", v.h.Name, "err", v.err)
			s.mu.Lock()
			for spec := range s.entries {
				want[spec] = true
			}
			s.mu.Unlock()
			continue
		}
		for _, c := range v.obs.Watched {
			if c.SettingsErr == nil && c.Settings.Schedule != "" {
				want[c.Settings.Schedule] = true
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, spec := range slices.Sorted(maps.Keys(s.entries)) {
		if !want[spec] {
			s.cron.Remove(s.entries[spec])
			delete(s.entries, spec)
			s.u.log.Info("schedule removed: no watched container uses it any more", "schedule", spec)
		}
	}
	for _, spec := range slices.Sorted(maps.Keys(want)) {
		if _, ok := s.entries[spec]; !ok {
			s.add(ctx, spec)
		}
	}
}

// add registers spec (s.mu held).
func (s *Scheduler) add(ctx context.Context, spec string) {
	sched, err := schedule.Parse(spec)
	if err != nil {
		s.u.log.Error("schedule not registered", "schedule", spec, "err", err) // labels are checked when read: unreachable
		return
	}
	id := s.cron.Schedule(sched, cron.FuncJob(func() { s.tick(ctx, spec) }))
	s.entries[spec] = id
	what := "a container's watcher.schedule"
	if spec == s.u.opts.Schedule {
		what = "the schedule key"
	}
	s.u.log.Info("schedule active", "schedule", spec, "from", what, "next", sched.Next(time.Now()).Format(time.RFC3339))
}

// tick asks for a run of the containers on spec.
func (s *Scheduler) tick(ctx context.Context, spec string) {
	if s.o.Before != nil {
		if err := s.o.Before(ctx); err != nil {
			s.u.log.Error("scheduled run skipped", "schedule", spec, "err", err)
			return
		}
	}
	if _, _, err := s.u.Trigger(ctx, Request{Trigger: TriggerSchedule, Schedules: []string{spec}}); err != nil {
		s.u.log.Error("scheduled run not started", "schedule", spec, "err", err)
	}
}
