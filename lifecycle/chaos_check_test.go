package lifecycle

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"

	"github.com/watcher-dev/watcher/store"
)

// User action effects on the service's name (chaosRun.mode), which decide what "runs exactly
// once" can mean after the schedule.
const (
	modeUntouched = "untouched" // the action found nothing to act on, or made copies only
	modeRemoved   = "removed"   // the user removed the container holding the name
	modeRenamed   = "renamed"   // ... renamed it
	modeStopped   = "stopped"   // ... stopped it
	modeForeign   = "foreign"   // a container the user made holds the name
)

// act plays the schedule's user action on whatever holds the service's name at that moment,
// straight on the engine (as the docker CLI would), records the containers it made and the
// state it left them in, and sets c.mode.
func (c *chaosRun) act() {
	ctx := context.Background()
	d := c.env.Docker
	c.actionDone = c.s.Action
	c.mode = modeUntouched
	holder, herr := d.ContainerInspect(ctx, c.svcName, client.ContainerInspectOptions{})
	h := holder.Container
	if herr != nil && c.s.Action != "takeover" {
		fmt.Fprintf(&c.out, "--- user %s: nothing holds %s (%v)\n", c.s.Action, c.svcName, herr)
		return
	}
	fmt.Fprintf(&c.out, "--- user %s on %s\n", c.s.Action, shortID(h.ID))
	force := client.ContainerRemoveOptions{Force: true}
	switch c.s.Action {
	case "rm":
		if _, err := d.ContainerRemove(ctx, h.ID, force); err == nil {
			c.mode = modeRemoved
		}
	case "rename":
		if _, err := d.ContainerRename(ctx, h.ID, client.ContainerRenameOptions{NewName: c.svcName + "-moved"}); err == nil {
			c.mode = modeRenamed
		}
	case "stop":
		timeout := 1
		if _, err := d.ContainerStop(ctx, h.ID, client.ContainerStopOptions{Timeout: &timeout}); err == nil {
			c.mode = modeStopped
		}
	case "takeover":
		if herr == nil {
			if _, err := d.ContainerRemove(ctx, h.ID, force); err == nil {
				c.mode = modeRemoved
			}
		}
		if id, err := c.userRun(c.svcName, c.userConfig(nil), true); err == nil {
			c.mode = modeForeign
			c.recordUser(id)
		}
	case "compose":
		c.composeRecreate(h)
	case "clone", "commit":
		c.copyOf(h)
	}
}

// userConfig is the configuration a user gives a container of their own: the service's image
// and settings (never the new version's exit), with labels (copied from a container of ours
// when given: clones inherit the watcher's label).
func (c *chaosRun) userConfig(labels map[string]string) *container.Config {
	l := map[string]string{}
	for k, v := range labels {
		l[k] = v
	}
	for k, v := range c.env.Labels(map[string]string{labelSeed: fmt.Sprint(c.s.Seed)}) {
		l[k] = v
	}
	return &container.Config{Image: c.ref, Env: []string{"APP_EXIT_CODE="}, Labels: l}
}

// userRun creates (and with start, starts) a user's container on the named volume.
func (c *chaosRun) userRun(name string, cfg *container.Config, start bool) (string, error) {
	ctx := context.Background()
	hc := &container.HostConfig{NetworkMode: "none", Mounts: c.namedMount()}
	res, err := c.env.Docker.ContainerCreate(ctx, client.ContainerCreateOptions{Name: name, Config: cfg, HostConfig: hc})
	if err != nil {
		fmt.Fprintf(&c.out, "--- user create %s: %v\n", name, err)
		return "", err
	}
	if start {
		if _, err := c.env.Docker.ContainerStart(ctx, res.ID, client.ContainerStartOptions{}); err != nil {
			fmt.Fprintf(&c.out, "--- user start %s: %v\n", name, err)
		}
	}
	c.recordUser(res.ID)
	return res.ID, nil
}

func (c *chaosRun) namedMount() []mount.Mount {
	return []mount.Mount{{Type: mount.TypeVolume, Source: c.volume, Target: "/named"}}
}

// composeRecreate does what `docker compose up` does to a changed service: create the new
// container as <id12>_<name> (labels copied, the watcher's among them), remove the old one,
// rename the new one, start it.
func (c *chaosRun) composeRecreate(h container.InspectResponse) {
	ctx := context.Background()
	d := c.env.Docker
	id, err := c.userRun(shortID(h.ID)+"_"+c.svcName, c.userConfig(h.Config.Labels), false)
	if err != nil {
		return
	}
	if _, err := d.ContainerRemove(ctx, h.ID, client.ContainerRemoveOptions{Force: true}); err == nil {
		c.mode = modeRemoved
	}
	if _, err := d.ContainerRename(ctx, id, client.ContainerRenameOptions{NewName: c.svcName}); err != nil {
		fmt.Fprintf(&c.out, "--- user rename: %v\n", err)
	} else if _, err := d.ContainerStart(ctx, id, client.ContainerStartOptions{}); err == nil {
		c.mode = modeForeign
	}
	c.recordUser(id)
}

// copyOf makes a copy of the container holding the name that carries its labels: a clone
// (Portainer's duplicate, runlike) or a container from a `docker commit` of it.
func (c *chaosRun) copyOf(h container.InspectResponse) {
	cfg := c.userConfig(h.Config.Labels)
	name := c.svcName + "-clone"
	if c.s.Action == "commit" {
		res, err := c.env.Docker.ContainerCommit(context.Background(), h.ID, client.ContainerCommitOptions{
			Reference: fmt.Sprintf("%s/committed:%s-%d", c.env.Registry.Host, c.env.Owner, c.s.Seed)})
		if err != nil {
			fmt.Fprintf(&c.out, "--- user commit: %v\n", err)
			return
		}
		cfg.Image, name = res.ID, c.svcName+"-copy"
	}
	if _, err := c.userRun(name, cfg, true); err == nil {
		c.mode = modeUntouched
	}
}

// recordUser notes (or updates) a user container with its current name and state: the watcher
// must leave it exactly so.
func (c *chaosRun) recordUser(id string) {
	ins, err := c.env.Docker.ContainerInspect(context.Background(), id, client.ContainerInspectOptions{})
	if err != nil {
		return
	}
	u := userContainer{ID: id, Name: strings.TrimPrefix(ins.Container.Name, "/"), Running: ins.Container.State.Running}
	if i := slices.IndexFunc(c.user, func(x userContainer) bool { return x.ID == id }); i >= 0 {
		c.user[i] = u
		return
	}
	c.user = append(c.user, u)
}

// check returns every invariant the schedule broke:
//   - no journal record is left unfinished;
//   - every container a user made is where and as the user left it;
//   - no temporary container is left, except one of ours a rollback kept stopped and aside
//     because a container the watcher did not create holds the name (its record says so);
//   - per service, never two of ours running; where the user left the name alone, exactly one
//     runs under it, ours, on the old or the new image; where a user's container holds the name,
//     none of ours runs;
//   - every marker file in the named and the anonymous volumes is intact.
func (c *chaosRun) check() []string {
	var v []string
	held, unfinished := c.journalState()
	v = append(v, unfinished...)
	ctrs := c.containers()
	user := map[string]bool{}
	for _, u := range c.user {
		user[u.ID] = true
		v = append(v, c.checkUser(u, ctrs)...)
	}
	for _, ctr := range ctrs {
		name := primaryName(ctr.Names)
		if user[ctr.ID] || !IsTemporaryName(name) {
			continue
		}
		if ctr.State == container.StateRunning || !held[txidOf(name)] {
			v = append(v, fmt.Sprintf("temporary container left: %s (%s, %s)", name, shortID(ctr.ID), ctr.State))
		}
	}
	for svc, name := range map[string]string{"svc": c.svcName, "dep": c.depName} {
		if c.original[svc] != "" {
			v = append(v, c.checkService(svc, name, ctrs, user)...)
		}
	}
	return append(v, c.checkMarkers()...)
}

// journalState returns the transactions that ended keeping ours aside for a foreign name holder,
// and a violation per unfinished record.
func (c *chaosRun) journalState() (held map[string]bool, unfinished []string) {
	held = map[string]bool{}
	s, err := store.Open(c.db)
	if err != nil {
		return held, []string{"state file: " + err.Error()}
	}
	defer s.Close()
	entries, err := s.Journals()
	if err != nil {
		return held, []string{"journal: " + err.Error()}
	}
	for _, e := range entries {
		var r record
		if err := json.Unmarshal(e.Data, &r); err != nil {
			unfinished = append(unfinished, "unreadable journal record "+e.TxID)
			continue
		}
		if !r.finished() {
			unfinished = append(unfinished, fmt.Sprintf("transaction %s on %s unfinished at step %s", r.TxID, r.Name, r.Step))
		}
		if r.Outcome == OutcomeFailed && r.Cause != nil && strings.Contains(r.Cause.Message, "which the watcher did not create") {
			held[r.TxID] = true
		}
	}
	return held, unfinished
}

// txidOf is the transaction id in a temporary name.
func txidOf(name string) string {
	i := strings.LastIndex(name, nameMarker)
	if i < 0 {
		return ""
	}
	rest := name[i+len(nameMarker):]
	return strings.TrimSuffix(strings.TrimSuffix(rest, "-new"), "-restore")
}

func (c *chaosRun) containers() []container.Summary {
	res, err := c.env.Docker.ContainerList(context.Background(), client.ContainerListOptions{All: true,
		Filters: make(client.Filters).Add("label", labelSeed+"="+fmt.Sprint(c.s.Seed))})
	if err != nil {
		c.t.Fatal(err)
	}
	return res.Items
}

func (c *chaosRun) checkUser(u userContainer, ctrs []container.Summary) []string {
	i := slices.IndexFunc(ctrs, func(x container.Summary) bool { return x.ID == u.ID })
	if i < 0 {
		return []string{fmt.Sprintf("the user's container %s (%s) was removed", u.Name, shortID(u.ID))}
	}
	var v []string
	if name := primaryName(ctrs[i].Names); name != u.Name {
		v = append(v, fmt.Sprintf("the user's container %s was renamed %s", u.Name, name))
	}
	if running := ctrs[i].State == container.StateRunning; running != u.Running {
		v = append(v, fmt.Sprintf("the user's container %s is %s, the user left it running=%v", u.Name, ctrs[i].State, u.Running))
	}
	return v
}

// checkService applies the "runs exactly once" invariants to one service.
func (c *chaosRun) checkService(svc, name string, ctrs []container.Summary, user map[string]bool) []string {
	var ours, running []container.Summary
	for _, ctr := range ctrs {
		if !user[ctr.ID] && ctr.Labels[labelService] == svc {
			ours = append(ours, ctr)
			if ctr.State == container.StateRunning {
				running = append(running, ctr)
			}
		}
	}
	describe := func(cs []container.Summary) string {
		var s []string
		for _, ctr := range cs {
			s = append(s, fmt.Sprintf("%s %s %s", primaryName(ctr.Names), shortID(ctr.ID), ctr.State))
		}
		return strings.Join(s, ", ")
	}
	mode := modeUntouched
	if svc == "svc" && c.mode != "" {
		mode = c.mode
	}
	switch {
	case len(running) > 1:
		return []string{fmt.Sprintf("%s: %d of ours run: %s", svc, len(running), describe(running))}
	case mode == modeForeign && len(running) > 0:
		return []string{fmt.Sprintf("%s: ours runs beside the user's container holding the name: %s", svc, describe(running))}
	case mode != modeUntouched:
		return nil
	case len(running) == 0:
		return []string{fmt.Sprintf("%s: nothing of ours runs (ours: %s)", svc, describe(ours))}
	case primaryName(running[0].Names) != name:
		return []string{fmt.Sprintf("%s: ours runs as %s, not under its name", svc, primaryName(running[0].Names))}
	case running[0].ImageID != c.imgs.ids[c.imgs.v1] && running[0].ImageID != c.imgs.ids[c.imgs.good]:
		return []string{fmt.Sprintf("%s: runs image %s, neither the old nor the new", svc, running[0].ImageID)}
	case len(ours) != 1:
		return []string{fmt.Sprintf("%s: containers of ours left besides the one serving: %s", svc, describe(ours))}
	}
	return nil
}
