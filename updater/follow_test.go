package updater

import (
	"maps"
	"slices"
	"testing"

	"github.com/moby/moby/api/types/events"
)

func imageEvent(action events.Action, id string) events.Message {
	return events.Message{Type: events.ImageEventType, Action: action, Actor: events.Actor{ID: id}}
}

func fullID(c byte) string {
	b := make([]byte, 64)
	for i := range b {
		b[i] = c
	}
	return "sha256:" + string(b)
}

// An image event drops only the image inspects it may have changed: the image a tag, untag or
// delete names by ID, the images of a pulled repository; anything it cannot place drops them all.
func TestImageEventsForgetWhatTheyChange(t *testing.T) {
	a, b, c := fullID('a'), fullID('b'), fullID('c')
	fill := func() *inventory {
		return &inventory{images: map[string]*imageInfo{
			a: {RepoDigests: []string{"127.0.0.1:5000/app@sha256:" + fullID('1')[7:]}},
			b: {RepoDigests: []string{"127.0.0.1:5000/db@sha256:" + fullID('2')[7:]}},
			c: {RepoDigests: []string{"nginx@sha256:" + fullID('3')[7:]}},
		}}
	}
	for _, tc := range []struct {
		name string
		m    events.Message
		kept []string
	}{
		{"delete by ID", imageEvent(events.ActionDelete, b), []string{a, c}},
		{"untag by ID", imageEvent(events.ActionUnTag, a), []string{b, c}},
		{"tag by ID", imageEvent(events.ActionTag, c), []string{a, b}},
		{"pull of a repository", imageEvent(events.ActionPull, "127.0.0.1:5000/app@sha256:"+fullID('9')[7:]), []string{b, c}},
		{"pull by a familiar name", imageEvent(events.ActionPull, "nginx:latest"), []string{a, b}},
		{"pull of another repository", imageEvent(events.ActionPull, "127.0.0.1:5000/other:v1"), []string{a, b, c}},
		{"tag not naming an ID", imageEvent(events.ActionTag, "app:latest"), nil},
		{"load", imageEvent(events.ActionLoad, ""), nil},
	} {
		inv := fill()
		inv.handle(tc.m)
		if got := slices.Sorted(maps.Keys(inv.images)); !slices.Equal(got, tc.kept) {
			t.Errorf("%s: kept %d inspects %v, want %v", tc.name, len(got), got, tc.kept)
		}
	}
}

// A destroyed container is dropped without an inspect, and a run's touch of it afterwards (its
// old container, removed at commit) asks for none either; a container that is back is inspected.
func TestDestroyedContainersNeedNoLook(t *testing.T) {
	inv := &inventory{dirty: map[string]uint64{}, gone: map[string]uint64{}, deps: map[string]depsEntry{},
		entries: map[string]*Container{"old": {ID: "old"}, "new": {ID: "new"}}}
	destroy := events.Message{Type: events.ContainerEventType, Action: events.ActionDestroy, Actor: events.Actor{ID: "old"}}
	inv.handle(destroy)
	inv.touch("old", "new")
	if seq := inv.dirty["old"]; seq == 0 || inv.gone["old"] != seq {
		t.Fatalf("the destroyed container is not marked gone: dirty %v gone %v", inv.dirty, inv.gone)
	}
	if inv.gone["new"] != 0 {
		t.Fatal("a container that was not destroyed is marked gone")
	}
	// An event after the destroy (the ID in use again: a replayed event) asks for a look.
	inv.handle(events.Message{Type: events.ContainerEventType, Action: events.ActionStart, Actor: events.Actor{ID: "old"}})
	if inv.gone["old"] == inv.dirty["old"] {
		t.Fatal("an event after the destroy did not ask for a look")
	}
}
