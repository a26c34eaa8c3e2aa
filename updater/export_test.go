package updater

// InventoryState is what the external tests may know of a host's inventory (follow.go).
type InventoryState struct {
	Live                                  bool
	Resyncs, Drifted, Refreshed, CaughtUp int
	Deps                                  int // containers whose dependency facts are kept
}

// InventoryOf returns the state of the inventory of the host named host ("" = the only one).
func InventoryOf(u *Updater, host string) InventoryState {
	for _, h := range u.hosts {
		if h.Name == host {
			s := h.inv.statsNow()
			h.inv.mu.Lock()
			deps := len(h.inv.deps)
			h.inv.mu.Unlock()
			return InventoryState{Live: h.inv.isLive(), Resyncs: s.Resyncs, Drifted: s.Drifted, Refreshed: s.Refreshed, CaughtUp: s.CaughtUp, Deps: deps}
		}
	}
	return InventoryState{}
}

// ResyncNow runs the periodic resync of host's inventory now.
func ResyncNow(u *Updater, host string) error {
	for _, h := range u.hosts {
		if h.Name == host {
			return h.inv.resync(u.baseCtx, "periodic")
		}
	}
	return nil
}
