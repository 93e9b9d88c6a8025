package store

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
)

// The portable backup format, the same whichever backend wrote it:
//
//	"berth-backup v1\n"
//	'e' uvarint(len key) key uvarint(len value) value uvarint(expiresAt)   (per key)
//	'z' uvarint(number of keys) sha256(everything before the sha256)
//
// Keys are the store's own (v1/t/…, meta/…), without an etcd prefix, so a
// backup restores under any prefix. The trailer makes a truncated or
// damaged file fail before anything is loaded.
const backupMagic = "berth-backup v1\n"

const (
	backupEntry   = 'e'
	backupTrailer = 'z'
	// maxBackupField bounds one key or value read from a file, so a
	// damaged length cannot ask for gigabytes.
	maxBackupField = 64 << 20
)

type backupWriter struct {
	w     *bufio.Writer
	sum   hash.Hash
	count uint64
	buf   [binary.MaxVarintLen64]byte
}

func newBackupWriter(w io.Writer) (*backupWriter, error) {
	bw := &backupWriter{w: bufio.NewWriter(w), sum: sha256.New()}
	return bw, bw.raw([]byte(backupMagic))
}

func (bw *backupWriter) raw(p []byte) error {
	bw.sum.Write(p)
	_, err := bw.w.Write(p)
	return err
}

func (bw *backupWriter) uvarint(v uint64) error {
	return bw.raw(bw.buf[:binary.PutUvarint(bw.buf[:], v)])
}

func (bw *backupWriter) write(e entry) error {
	bw.count++
	return errors.Join(
		bw.raw([]byte{backupEntry}),
		bw.uvarint(uint64(len(e.key))), bw.raw([]byte(e.key)),
		bw.uvarint(uint64(len(e.value))), bw.raw(e.value),
		bw.uvarint(e.expiresAt),
	)
}

func (bw *backupWriter) close() error {
	if err := errors.Join(bw.raw([]byte{backupTrailer}), bw.uvarint(bw.count)); err != nil {
		return err
	}
	if _, err := bw.w.Write(bw.sum.Sum(nil)); err != nil {
		return err
	}
	return bw.w.Flush()
}

// isLegacyBackup reports whether r holds something other than the portable
// format: a backup in Badger's own format, from Berth before it had one.
func isLegacyBackup(r *bufio.Reader) (bool, error) {
	head, err := r.Peek(len(backupMagic))
	if errors.Is(err, io.EOF) {
		return len(head) == 0 || !bytes.HasPrefix([]byte(backupMagic), head), nil
	}
	if err != nil {
		return false, err
	}
	return string(head) != backupMagic, nil
}

// readBackup reads and checks a whole portable backup.
func readBackup(r *bufio.Reader) ([]entry, error) {
	sum := sha256.New()
	tr := &hashingReader{r: r, h: sum}
	magic := make([]byte, len(backupMagic))
	if _, err := io.ReadFull(tr, magic); err != nil || string(magic) != backupMagic {
		return nil, errors.New("not a Berth backup")
	}
	var entries []entry
	for {
		kind, err := tr.ReadByte()
		if err != nil {
			return nil, damaged(err)
		}
		if kind == backupTrailer {
			break
		}
		if kind != backupEntry {
			return nil, damaged(fmt.Errorf("unknown record %q", kind))
		}
		key, err := readField(tr)
		if err != nil {
			return nil, damaged(err)
		}
		value, err := readField(tr)
		if err != nil {
			return nil, damaged(err)
		}
		exp, err := binary.ReadUvarint(tr)
		if err != nil {
			return nil, damaged(err)
		}
		entries = append(entries, entry{key: string(key), value: value, expiresAt: exp})
	}
	count, err := binary.ReadUvarint(tr)
	if err != nil {
		return nil, damaged(err)
	}
	want := sum.Sum(nil)
	got := make([]byte, len(want))
	if _, err := io.ReadFull(r, got); err != nil {
		return nil, damaged(err)
	}
	if !bytes.Equal(got, want) || count != uint64(len(entries)) {
		return nil, damaged(errors.New("checksum or count does not match"))
	}
	return entries, nil
}

func damaged(err error) error {
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("the backup is damaged or truncated: %w", err)
}

func readField(r *hashingReader) ([]byte, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, err
	}
	if n > maxBackupField {
		return nil, fmt.Errorf("field of %d bytes", n)
	}
	b := make([]byte, n)
	_, err = io.ReadFull(r, b)
	return b, err
}

// hashingReader hashes what it reads.
type hashingReader struct {
	r *bufio.Reader
	h hash.Hash
}

func (hr *hashingReader) Read(p []byte) (int, error) {
	n, err := hr.r.Read(p)
	hr.h.Write(p[:n])
	return n, err
}

func (hr *hashingReader) ReadByte() (byte, error) {
	b, err := hr.r.ReadByte()
	if err == nil {
		hr.h.Write([]byte{b})
	}
	return b, err
}
