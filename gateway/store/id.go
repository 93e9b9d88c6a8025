package store

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/binary"
	"sync"
	"time"
)

// idEncoding is Crockford's base32 alphabet in lower case. Its characters
// are in ascending ASCII order, so encoded ids sort like their bytes.
var idEncoding = base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)

var idState struct {
	sync.Mutex
	lastMS uint64
	last   [16]byte
}

// NewID returns prefix + "_" + 26 characters: 48 bits of milliseconds since
// the epoch, then 80 random bits. Ids sort by creation time, so tables
// scanned in id order are in creation order and audit can walk newest first;
// within one millisecond the random part is incremented, keeping ids made by
// this process strictly increasing.
func NewID(prefix string) string {
	idState.Lock()
	ms := uint64(time.Now().UnixMilli())
	var b [16]byte
	if ms <= idState.lastMS {
		// Same (or earlier, after a clock step) millisecond: count up.
		b = idState.last
		for i := 15; i >= 6; i-- {
			b[i]++
			if b[i] != 0 {
				break
			}
		}
	} else {
		binary.BigEndian.PutUint64(b[:8], ms<<16)
		if _, err := rand.Read(b[6:]); err != nil {
			panic("store: no randomness: " + err.Error())
		}
		idState.lastMS = ms
	}
	idState.last = b
	idState.Unlock()
	return prefix + "_" + idEncoding.EncodeToString(b[:])
}
