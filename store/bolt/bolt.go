// Package bolt is the embedded store.Backend of the all-in-one dev mode: one
// bbolt file, pure Go, no server to run. Every write is one transaction
// committed with fsync, so whatever a method reported as done survives a
// crash or kill -9.
//
// Layout (every key sorts as bytes; IDs are 8-byte big-endian, so they sort
// as numbers):
//
//	accounts  user ID                       -> account
//	usernames username                      -> user ID   (uniqueness, prefix search)
//	convs     conversation ID               -> kind, title, creator, creation time
//	members   conversation 0x00 user ID     -> join time, read mark, unread counters
//	userconvs user ID conversation ID       -> (empty)  (a user's conversations)
//	messages  conversation 0x00 message ID  -> sender, time, client ID, body, reply-to
//	sessions  session ID                    -> session (JSON)
//	usersessions user ID session ID         -> (empty)  (a user's sessions)
//	counts    conversation ID               -> number of messages stored
//
//	devices   token                         -> user ID   (a token's one owner)
//	userdevs  user ID token                 -> device JSON
//	mutes     conversation 0x00 user ID     -> (empty)  (muted conversations)
//
// and, for messages that changed, msgstate, reactions and changes
// (changes.go).
//
// A history page is one range scan of messages; a conversation's last
// message is the last key of its range, so saving a message needs no other
// write and the last message can never move backward. A conversation ID
// never holds a 0x00 byte (chat.ValidConversationID), so "conversation
// 0x00" is a prefix no other conversation's keys share.
package bolt

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/chatcluster/chat"
	"github.com/chatcluster/chat/store"
	bbolt "go.etcd.io/bbolt"
	bberrors "go.etcd.io/bbolt/errors"
)

// Options tunes Open. The zero value is ready to use.
type Options struct {
	// LockTimeout is how long Open waits for another process to release
	// the file. Default 5 s; bbolt would wait forever.
	LockTimeout time.Duration
	// Mode is the permission of a new file. Default 0600.
	Mode os.FileMode
	// InitialMmapSize is the size of the first memory map in bytes. A map
	// larger than the file keeps readers from blocking a writer that grows
	// it. Default 64 MiB (address space, not memory).
	InitialMmapSize int
	// NoSync skips the fsync of each commit: for tools that fill a file
	// in bulk before a server uses it (and then call Close, which syncs),
	// never for a serving store, whose acks promise durability.
	NoSync bool
}

// Defaults of Options.
const (
	DefaultLockTimeout     = 5 * time.Second
	DefaultMode            = 0o600
	DefaultInitialMmapSize = 64 << 20
)

// maxUnreadScan bounds the messages one unread count looks at: counting
// stops at chat.UnreadCap messages from others, and also after this many
// messages in all, so that a reader's own long monologue cannot make the
// count unbounded. Past it the count is a lower bound.
const maxUnreadScan = 64 * chat.UnreadCap

// formatVersion is written to the meta bucket; Open refuses other versions.
const formatVersion = 1

var (
	bucketMeta      = []byte("meta")
	bucketAccounts  = []byte("accounts")
	bucketUsernames = []byte("usernames")
	bucketConvs     = []byte("convs")
	bucketMembers   = []byte("members")
	bucketUserConvs = []byte("userconvs")
	bucketMessages  = []byte("messages")
	bucketDevices   = []byte("devices")
	bucketUserDevs  = []byte("userdevs")
	bucketMutes     = []byte("mutes")
	// bucketCounts holds each conversation's number of stored messages
	// (8 bytes): with the counters of a membership, an unread count is
	// arithmetic, not a scan. Added by issue 11; a conversation stored
	// before has no entry until its next message, which counts it once.
	bucketCounts = []byte("counts")

	bucketSessions = []byte("sessions")
	bucketUserSess = []byte("usersessions")

	allBuckets = [][]byte{bucketMeta, bucketAccounts, bucketUsernames, bucketConvs, bucketMembers, bucketUserConvs, bucketMessages,
		bucketMsgState, bucketReactions, bucketChanges, bucketDevices, bucketUserDevs, bucketMutes,
		bucketSessions, bucketUserSess, bucketCounts}

	keyVersion = []byte("version")
)

// Backend is a store.Backend on one bbolt file.
type Backend struct {
	db *bbolt.DB

	closeMu sync.Mutex
	closed  bool
}

var _ store.Backend = (*Backend)(nil)

// Open opens or creates the database file at path (creating its directory)
// and returns a backend on it. Only one process can hold the file.
func Open(path string, opts Options) (*Backend, error) {
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = DefaultLockTimeout
	}
	if opts.Mode == 0 {
		opts.Mode = DefaultMode
	}
	if opts.InitialMmapSize <= 0 {
		opts.InitialMmapSize = DefaultInitialMmapSize
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("bolt: %w", err)
	}
	db, err := bbolt.Open(path, opts.Mode, &bbolt.Options{
		Timeout:         opts.LockTimeout,
		InitialMmapSize: opts.InitialMmapSize,
		NoSync:          opts.NoSync,
		FreelistType:    bbolt.FreelistMapType,
	})
	if err != nil {
		return nil, fmt.Errorf("bolt: open %s: %w", path, err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		switch v := meta.Get(keyVersion); {
		case v == nil:
			return meta.Put(keyVersion, binary.BigEndian.AppendUint64(nil, formatVersion))
		case len(v) != 8 || binary.BigEndian.Uint64(v) != formatVersion:
			return fmt.Errorf("unsupported format version %x (want %d)", v, formatVersion)
		}
		return nil
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("bolt: open %s: %w", path, err)
	}
	return &Backend{db: db}, nil
}

// Close closes the file after the transactions in flight. Safe to call
// twice; later calls return nil. Methods called after Close fail with
// chat.ErrUnavailable.
func (b *Backend) Close() error {
	b.closeMu.Lock()
	defer b.closeMu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	if b.db.NoSync {
		if err := b.db.Sync(); err != nil {
			return fmt.Errorf("bolt: sync: %w", err)
		}
	}
	if err := b.db.Close(); err != nil {
		return fmt.Errorf("bolt: close: %w", err)
	}
	return nil
}

// view runs fn in a read transaction.
func (b *Backend) view(ctx context.Context, fn func(tx *bbolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return wrapErr(b.db.View(fn))
}

// update runs fn in a write transaction, committed with fsync.
func (b *Backend) update(ctx context.Context, fn func(tx *bbolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return wrapErr(b.db.Update(fn))
}

// wrapErr maps bbolt's errors to the store's sentinels; the store's own
// errors pass through.
func wrapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, bberrors.ErrDatabaseNotOpen):
		return fmt.Errorf("%w: bolt: database closed", chat.ErrUnavailable)
	case errors.Is(err, chat.ErrNotFound), errors.Is(err, chat.ErrUsernameTaken),
		errors.Is(err, chat.ErrInvalid), errors.Is(err, chat.ErrTooMany), errors.Is(err, chat.ErrConflict):
		return err
	default:
		return fmt.Errorf("bolt: %w", err)
	}
}
