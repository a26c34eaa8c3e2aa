package registry

import (
	"context"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/moby/moby/api/pkg/authconfig"
	mobyregistry "github.com/moby/moby/api/types/registry"
)

// configKeychain answers with the credentials from config for hosts it has them for, and asks the
// fallback keychain (normally authn.DefaultKeychain: docker config.json, credential helpers,
// podman's auth.json) for all others.
type configKeychain struct {
	auth     map[string]authn.AuthConfig // normalised host -> credentials
	fallback authn.Keychain
}

var _ authn.ContextKeychain = (*configKeychain)(nil)

func newConfigKeychain(auth map[string]authn.AuthConfig, fallback authn.Keychain) *configKeychain {
	k := &configKeychain{auth: map[string]authn.AuthConfig{}, fallback: fallback}
	for host, cfg := range auth {
		k.auth[normalizeHost(host)] = cfg
	}
	return k
}

func (k *configKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	return k.ResolveContext(context.Background(), r)
}

func (k *configKeychain) ResolveContext(ctx context.Context, r authn.Resource) (authn.Authenticator, error) {
	if cfg, ok := k.auth[normalizeHost(r.RegistryStr())]; ok {
		return authn.FromConfig(cfg), nil
	}
	return authn.Resolve(ctx, k.fallback, r)
}

// credentialError is a failure to find credentials (a broken config file, a credential helper
// that is missing or fails); it is reported as failure.Unauthorized.
type credentialError struct {
	host string
	err  error
}

func (e *credentialError) Error() string {
	return "looking up credentials for " + e.host + ": " + e.err.Error()
}
func (e *credentialError) Unwrap() error { return e.err }

// PullAuth returns the credentials for ref's registry encoded for the engine's X-Registry-Auth
// header (image pull's RegistryAuth), or "" when the registry is used anonymously. It uses the
// same lookup as Check: config credentials first, then the keychain.
func (c *Checker) PullAuth(ref string) (string, error) {
	r, err := parseRef(ref)
	if err != nil {
		return "", err
	}
	reg := r.Context().Registry
	auth, err := authn.Resolve(context.Background(), c.keys, reg)
	if err != nil {
		return "", &credentialError{host: reg.RegistryStr(), err: err}
	}
	cfg, err := authn.Authorization(context.Background(), auth)
	if err != nil {
		return "", &credentialError{host: reg.RegistryStr(), err: err}
	}
	if *cfg == (authn.AuthConfig{}) {
		return "", nil
	}
	server := reg.RegistryStr()
	if server == name.DefaultRegistry {
		server = authn.DefaultAuthKey // "https://index.docker.io/v1/", the key docker login uses
	}
	return authconfig.Encode(mobyregistry.AuthConfig{
		Username:      cfg.Username,
		Password:      cfg.Password,
		Auth:          cfg.Auth,
		ServerAddress: server,
		IdentityToken: cfg.IdentityToken,
		RegistryToken: cfg.RegistryToken,
	})
}
