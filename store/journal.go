package store

import (
	"bytes"
	"errors"

	bolt "go.etcd.io/bbolt"
)

// JournalEntry is one transaction record: its id, the ID of the container it replaces, and the
// caller's encoding of its state (the store does not interpret it).
type JournalEntry struct {
	TxID        string
	ContainerID string
	Data        []byte
}

// PutJournal writes (or overwrites) the record of transaction txid for containerID. The write is
// durable when PutJournal returns: the journal is written before each step is taken.
func (s *Store) PutJournal(txid, containerID string, data []byte) error {
	if txid == "" || containerID == "" {
		return errors.New("store: journal needs a transaction id and a container id")
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.Bucket(bucketJournal).CreateBucketIfNotExists([]byte(txid))
		if err != nil {
			return err
		}
		if prev := b.Get(keyContainer); prev != nil && string(prev) != containerID {
			return errors.New("store: transaction " + txid + " belongs to container " + string(prev))
		}
		if err := b.Put(keyContainer, []byte(containerID)); err != nil {
			return err
		}
		if err := b.Put(keyData, data); err != nil {
			return err
		}
		return tx.Bucket(bucketJournalBy).Put(indexKey(containerID, txid), nil)
	})
}

// Journal returns the record of txid, or ErrNotFound.
func (s *Store) Journal(txid string) (JournalEntry, error) {
	var e JournalEntry
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketJournal).Bucket([]byte(txid))
		if b == nil {
			return ErrNotFound
		}
		e = entry(txid, b)
		return nil
	})
	return e, err
}

// Journals returns every record, oldest transaction id first.
func (s *Store) Journals() ([]JournalEntry, error) {
	var out []JournalEntry
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketJournal).ForEachBucket(func(k []byte) error {
			out = append(out, entry(string(k), tx.Bucket(bucketJournal).Bucket(k)))
			return nil
		})
	})
	return out, err
}

// JournalsFor returns the records of transactions on containerID, oldest first.
func (s *Store) JournalsFor(containerID string) ([]JournalEntry, error) {
	var out []JournalEntry
	err := s.db.View(func(tx *bolt.Tx) error {
		prefix := indexKey(containerID, "")
		c := tx.Bucket(bucketJournalBy).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			txid := string(k[len(prefix):])
			if b := tx.Bucket(bucketJournal).Bucket([]byte(txid)); b != nil {
				out = append(out, entry(txid, b))
			}
		}
		return nil
	})
	return out, err
}

// DeleteJournal removes the record of txid; a missing record is not an error.
func (s *Store) DeleteJournal(txid string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		j := tx.Bucket(bucketJournal)
		b := j.Bucket([]byte(txid))
		if b == nil {
			return nil
		}
		if c := b.Get(keyContainer); c != nil {
			if err := tx.Bucket(bucketJournalBy).Delete(indexKey(string(c), txid)); err != nil {
				return err
			}
		}
		return j.DeleteBucket([]byte(txid))
	})
}

func entry(txid string, b *bolt.Bucket) JournalEntry {
	return JournalEntry{TxID: txid, ContainerID: string(b.Get(keyContainer)), Data: bytes.Clone(b.Get(keyData))}
}

func indexKey(containerID, txid string) []byte {
	return []byte(containerID + "\x00" + txid)
}
