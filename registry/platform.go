package registry

import (
	"runtime"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// wantPlatform fills in what a query left empty: the engine runs linux/GOARCH containers unless
// told otherwise.
func wantPlatform(p v1.Platform) v1.Platform {
	if p.OS == "" {
		p.OS = "linux"
	}
	if p.Architecture == "" {
		p.Architecture = runtime.GOARCH
	}
	return p
}

// normVariant treats the variants the engine leaves implicit as equal to their explicit form,
// as containerd's platform matcher does: arm64 == arm64/v8, arm == arm/v7.
func normVariant(arch, variant string) string {
	switch {
	case arch == "arm64" && variant == "":
		return "v8"
	case arch == "arm" && variant == "":
		return "v7"
	}
	return variant
}

// pickManifest returns the index entry for platform p: same OS and architecture and the same
// (normalised) variant; failing that, when p names no variant, the first entry of that OS and
// architecture. Entries without a platform (attestations) never match.
func pickManifest(idx *v1.IndexManifest, p v1.Platform) (v1.Descriptor, bool) {
	var loose *v1.Descriptor
	for i, d := range idx.Manifests {
		dp := d.Platform
		if dp == nil || dp.OS != p.OS || dp.Architecture != p.Architecture {
			continue
		}
		if normVariant(dp.Architecture, dp.Variant) == normVariant(p.Architecture, p.Variant) {
			return d, true
		}
		if p.Variant == "" && loose == nil {
			loose = &idx.Manifests[i]
		}
	}
	if loose != nil {
		return *loose, true
	}
	return v1.Descriptor{}, false
}
