// Package testcerts makes the certificates tests need for a Docker engine on TCP with TLS: a CA,
// a server certificate for 127.0.0.1 and a client certificate, written as PEM files. Tests only.
package testcerts

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Files are the PEM files Write made, by the names dockerd and the docker CLI use.
type Files struct {
	Dir        string
	CA         string // ca.pem: the CA both certificates chain to
	ServerCert string // server-cert.pem: for 127.0.0.1 and localhost
	ServerKey  string // server-key.pem
	Cert       string // cert.pem: the client certificate
	Key        string // key.pem: its key
}

// Options change what Write makes; the zero value is a valid set.
type Options struct {
	ClientNotAfter time.Time // the client certificate's expiry; zero = a day from now
}

// Write makes a fresh CA, server and client certificate in dir.
func Write(dir string, o Options) (Files, error) {
	f := Files{Dir: dir, CA: filepath.Join(dir, "ca.pem"), ServerCert: filepath.Join(dir, "server-cert.pem"),
		ServerKey: filepath.Join(dir, "server-key.pem"), Cert: filepath.Join(dir, "cert.pem"), Key: filepath.Join(dir, "key.pem")}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "watcher test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caKey, caDER, err := sign(caTmpl, nil, nil)
	if err != nil {
		return f, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return f, err
	}
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	notAfter := o.ClientNotAfter
	if notAfter.IsZero() {
		notAfter = now.Add(24 * time.Hour)
	}
	cliTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "watcher"},
		NotBefore: now.Add(-48 * time.Hour), NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if err := writeCert(caDER, nil, f.CA, ""); err != nil {
		return f, err
	}
	for _, c := range []struct {
		tmpl            *x509.Certificate
		cert, keyOutput string
	}{{srvTmpl, f.ServerCert, f.ServerKey}, {cliTmpl, f.Cert, f.Key}} {
		key, der, err := sign(c.tmpl, ca, caKey)
		if err != nil {
			return f, err
		}
		if err := writeCert(der, key, c.cert, c.keyOutput); err != nil {
			return f, err
		}
	}
	return f, nil
}

// sign makes a key and a certificate for tmpl, signed by parent (self-signed when nil).
func sign(tmpl, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*ecdsa.PrivateKey, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	return key, der, err
}

// writeCert writes a certificate and, when keyPath is set, its key (readable by the owner only).
func writeCert(der []byte, key *ecdsa.PrivateKey, certPath, keyPath string) error {
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return err
	}
	if keyPath == "" {
		return nil
	}
	b, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	return os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: b}), 0o600)
}
