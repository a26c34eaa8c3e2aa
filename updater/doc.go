// Package updater runs a cycle: observe the containers, check the watched ones' registries, plan
// (the one place that decides what is updated, in which order, and what is held or left alone,
// and why), apply the plan through lifecycle, and report. docs/architecture.md follows one update
// through it.
package updater
