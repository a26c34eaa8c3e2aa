package store

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"io"
	"sync"
)

// Run reports are stored gzipped. A report repeats its keys, images and digests on every line: one
// of 1000 containers is ~380 KB of JSON and ~60 KB gzipped, and the file keeps the last 500 runs
// (200 MB against 30 MB). The file's pages are read through bbolt's memory map, so they are
// also memory the daemon maps: the whole file once Open has checked it. Reports stored plain
// (smaller than minPacked, or written by an earlier version) are read as they are.

// minPacked is the size from which a report is compressed: below it gzip's header and the
// compressor's setup cost more than they save.
const minPacked = 1 << 10

var gzipMagic = []byte{0x1f, 0x8b}

// maxUnpacked bounds the size a gzip trailer may announce (a damaged one must not make Run
// allocate gigabytes); a larger report is still read, only without the buffer sized up front.
const maxUnpacked = 64 << 20

// gzipWriters keeps compressors between the runs of a busy daemon (each is ~0.5 MB to make).
var gzipWriters = sync.Pool{New: func() any {
	w, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed) // BestSpeed: a valid level, no error
	return w
}}

// pack is data as stored: gzipped when it is large enough to gain from it.
func pack(data []byte) []byte {
	if len(data) < minPacked {
		return data
	}
	var buf bytes.Buffer
	buf.Grow(len(data) / 4)
	zw := gzipWriters.Get().(*gzip.Writer)
	zw.Reset(&buf)
	_, _ = zw.Write(data) // writes to a bytes.Buffer do not fail
	_ = zw.Close()
	gzipWriters.Put(zw)
	return buf.Bytes()
}

// unpack is a stored value as it was given to pack, in memory of its own (v may be bbolt's
// map, valid only inside the transaction).
func unpack(v []byte) ([]byte, error) {
	if !bytes.HasPrefix(v, gzipMagic) {
		return bytes.Clone(v), nil
	}
	zr, err := gzip.NewReader(bytes.NewReader(v))
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if n := binary.LittleEndian.Uint32(v[len(v)-4:]); n <= maxUnpacked { // gzip's trailer: the size
		out.Grow(int(n))
	}
	if _, err := io.Copy(&out, zr); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// unpackRun is unpack for the run report stored under id, its failure naming the run.
func unpackRun(id, v []byte) ([]byte, error) {
	out, err := unpack(v)
	if err != nil {
		return nil, fmt.Errorf("store: the stored report of run %s cannot be read: %w", id, err)
	}
	return out, nil
}
