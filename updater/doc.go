// Package updater runs a cycle: discover the watched containers, check their registries, plan the
// updates in dependency order, apply them through lifecycle, and report.
package updater
