package store

import (
	"bytes"
	"errors"

	bolt "go.etcd.io/bbolt"
)

// Small keyed records the updater and the notifier keep across restarts; the store does not
// interpret them.
var (
	bucketNotices = []byte("notices") // report line key -> what was last notified about it
	bucketUpdates = []byte("updates") // container -> its last committed update (for rollback)
	// bucketServices journals Swarm service updates: host/service ID -> the update in flight.
	bucketServices = []byte("service_journal")
	// bucketApprovals: container -> the update it waits for a person's decision on
	bucketApprovals = []byte("approvals")
)

// PutNotice records what was last notified about key; nil data forgets it.
func (s *Store) PutNotice(key string, data []byte) error {
	return s.putOrDelete(bucketNotices, key, data)
}

// Notices returns every recorded notice, by key.
func (s *Store) Notices() (map[string][]byte, error) { return s.all(bucketNotices) }

// PutUpdate records the last committed update of a container (key: its name); nil forgets it.
func (s *Store) PutUpdate(key string, data []byte) error {
	return s.putOrDelete(bucketUpdates, key, data)
}

// Update returns the record PutUpdate stored under key, or ErrNotFound.
func (s *Store) Update(key string) ([]byte, error) { return s.get(bucketUpdates, key) }

// Updates returns every update record, by key.
func (s *Store) Updates() (map[string][]byte, error) { return s.all(bucketUpdates) }

// PutServiceJournal records the Swarm service update in flight under key (host/service ID), durably
// before PutServiceJournal returns; nil data forgets it (the update ended).
func (s *Store) PutServiceJournal(key string, data []byte) error {
	return s.putOrDelete(bucketServices, key, data)
}

// ServiceJournals returns every service update in flight, by key.
func (s *Store) ServiceJournals() (map[string][]byte, error) { return s.all(bucketServices) }

// PutApproval records the update a container waits for approval of (key: the container); nil
// forgets it.
func (s *Store) PutApproval(key string, data []byte) error {
	return s.putOrDelete(bucketApprovals, key, data)
}

// Approvals returns every approval record, by key.
func (s *Store) Approvals() (map[string][]byte, error) { return s.all(bucketApprovals) }

func (s *Store) putOrDelete(bucket []byte, key string, data []byte) error {
	if key == "" {
		return errors.New("store: empty key")
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		if data == nil {
			return b.Delete([]byte(key))
		}
		return b.Put([]byte(key), data)
	})
}

func (s *Store) all(bucket []byte) (map[string][]byte, error) {
	out := map[string][]byte{}
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucket).ForEach(func(k, v []byte) error {
			out[string(k)] = bytes.Clone(v)
			return nil
		})
	})
	return out, err
}
