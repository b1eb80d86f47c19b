// Package monitor closes the loop after deployment: receipts that the server signs when it
// scores, the outcomes fed back with them, and the monitors that watch a profile's promises —
// calibration, coverage, selective risk and sycophancy — per profile version × segment.
package monitor

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"os"
	"strings"
	"sync"
	"time"
	"unsafe"

	"google.golang.org/protobuf/proto"

	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
)

// Receipts: "r1." + base64url(ReceiptBody) + "." + base64url(the first 16 bytes of
// HMAC-SHA256(key, "r1." + base64url(body))). A receipt is good for MaxAge after it was issued.
const (
	receiptPrefix = "r1."
	macBytes      = 16
	// MinKeyBytes is the shortest receipt key.
	MinKeyBytes = 32
	// MaxAge is how long a receipt may wait for its outcome.
	MaxAge = 30 * 24 * time.Hour
	// MaxReceiptBytes is the longest receipt Open reads.
	MaxReceiptBytes = 64 << 10
)

// The reasons a receipt is refused.
var (
	ErrForged  = errors.New("the receipt's signature does not match: it was altered, or signed with another key")
	ErrExpired = errors.New("the receipt is older than 30 days")
	ErrFuture  = errors.New("the receipt was issued in the future: the servers' clocks disagree")
	ErrBadForm = errors.New("not a plumb receipt")
)

// Signer signs and opens receipts with one key; replicas that share the key open each other's.
type Signer struct {
	key     []byte
	scratch sync.Pool // of *scratch
	now     func() time.Time
}

// NewSigner returns a Signer of key (at least MinKeyBytes bytes).
func NewSigner(key []byte) (*Signer, error) {
	if len(key) < MinKeyBytes {
		return nil, fmt.Errorf("a receipt key of %d bytes: give at least %d random bytes (openssl rand -hex 32 > receipt.key)", len(key), MinKeyBytes)
	}
	s := &Signer{key: bytes.Clone(key), now: time.Now}
	s.scratch.New = func() any { return &scratch{mac: hmac.New(sha256.New, s.key)} }
	return s, nil
}

// ReadKeyFile reads a receipt key: the file's contents, surrounding white space trimmed.
func ReadKeyFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return bytes.TrimSpace(b), nil
}

// scratch is Sign's reused buffers: the body's bytes and the MAC.
type scratch struct {
	raw, sum []byte
	mac      hash.Hash
}

// NewID returns a receipt id issued at now: 4 bytes of its Unix seconds, big-endian, then 8
// random bytes. The time first keeps ids issued together near each other in the store's index
// of ids (as UUIDv7 does), so that taking in outcomes touches its recent pages, not all of
// them; the random part keeps ids apart and breaks the exchangeability test's ties.
func NewID(now time.Time) [12]byte {
	var id [12]byte
	binary.BigEndian.PutUint32(id[:4], uint32(now.Unix()))
	rand.Read(id[4:])
	return id
}

// Sign returns the receipt of b.
func (s *Signer) Sign(b *plumbv1.ReceiptBody) (string, error) {
	sc := s.scratch.Get().(*scratch)
	defer s.scratch.Put(sc)
	var err error
	if sc.raw, err = (proto.MarshalOptions{Deterministic: true}).MarshalAppend(sc.raw[:0], b); err != nil {
		return "", err
	}
	enc := base64.RawURLEncoding
	body := len(receiptPrefix) + enc.EncodedLen(len(sc.raw))
	out := make([]byte, body+1+enc.EncodedLen(macBytes))
	copy(out, receiptPrefix)
	enc.Encode(out[len(receiptPrefix):body], sc.raw)
	sc.mac.Reset()
	sc.mac.Write(out[:body])
	sc.sum = sc.mac.Sum(sc.sum[:0])
	out[body] = '.'
	enc.Encode(out[body+1:], sc.sum[:macBytes])
	return unsafe.String(&out[0], len(out)), nil
}

func (s *Signer) mac(signed string) []byte {
	sc := s.scratch.Get().(*scratch)
	defer s.scratch.Put(sc)
	sc.mac.Reset()
	sc.mac.Write([]byte(signed))
	return sc.mac.Sum(nil)[:macBytes]
}

// Open checks a receipt's signature and age and returns its body.
func (s *Signer) Open(receipt string) (*plumbv1.ReceiptBody, error) {
	if len(receipt) > MaxReceiptBytes || !strings.HasPrefix(receipt, receiptPrefix) {
		return nil, ErrBadForm
	}
	dot := strings.LastIndexByte(receipt, '.')
	if dot < len(receiptPrefix) {
		return nil, ErrBadForm
	}
	sig, err := base64.RawURLEncoding.DecodeString(receipt[dot+1:])
	if err != nil {
		return nil, ErrBadForm
	}
	if !hmac.Equal(sig, s.mac(receipt[:dot])) {
		return nil, ErrForged
	}
	raw, err := base64.RawURLEncoding.DecodeString(receipt[len(receiptPrefix):dot])
	if err != nil {
		return nil, ErrBadForm
	}
	b := new(plumbv1.ReceiptBody)
	if err := proto.Unmarshal(raw, b); err != nil || len(b.GetId()) == 0 {
		return nil, ErrBadForm
	}
	issued := time.Unix(b.GetIssuedUnix(), 0)
	now := s.now()
	switch {
	case now.Sub(issued) > MaxAge:
		return nil, ErrExpired
	case issued.Sub(now) > time.Minute:
		return nil, ErrFuture
	}
	return b, nil
}
