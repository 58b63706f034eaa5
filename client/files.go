package client

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/hush-chat/hush/proto"
)

// The server deletes the attachment of a disappearing message with the
// message, as soon as every device has received it. A device that
// receives one therefore downloads the blob before it acknowledges the
// message, checks it, and keeps it in the local store (tableFiles, sealed
// like every row) until the message disappears; [Client.DownloadAttachment]
// reads it from there. The device that sent it keeps no copy: it has the
// file it sent. Attachments that do not disappear stay on the server and
// are downloaded when asked for.

// fileRowsPerTx is how many blob chunks one transaction writes.
const fileRowsPerTx = 16

// fileKey is the row of chunk i of a message's blob, as the blob holds it
// (sealed with the attachment's key).
func fileKey(id string, i int) string { return fmt.Sprintf("%s/%06d", id, i) }

// errFileGone stops a download whose message disappeared meanwhile.
var errFileGone = errors.New("client: the message disappeared during the download")

// queueFetch schedules the download of a disappearing message's
// attachment.
func (tx *tx) queueFetch(conv, id string) error { return tx.put(tableFetch, id, conv) }

// dropLocalFile deletes a message's local copy of its attachment, and its
// download if it is queued.
func (tx *tx) dropLocalFile(id string) error {
	var keys []string
	err := tx.raw.Scan(tableFiles, id+"/", func(key string, _ []byte) error {
		keys = append(keys, key)
		return nil
	})
	for _, k := range keys {
		err = errors.Join(err, tx.delete(tableFiles, k))
	}
	return errors.Join(err, tx.delete(tableFetch, id))
}

// fetchAttachments downloads the queued attachments. One that cannot
// ever be had (the server no longer holds it, or it does not verify) is
// dropped; any other failure stops, to be tried again before the next
// acknowledgement.
func (c *Client) fetchAttachments(ctx context.Context) error {
	queued := map[string]string{} // message id → conversation
	err := c.db.view(ctx, func(tx *tx) error {
		return tx.scan(tableFetch, "", func(id string, decode func(any) error) error {
			var conv string
			if err := decode(&conv); err != nil {
				return err
			}
			queued[id] = conv
			return nil
		})
	})
	if err != nil {
		return err
	}
	for id, conv := range queued {
		err := c.fetchAttachment(ctx, conv, id)
		switch {
		case err == nil || errors.Is(err, errFileGone):
		case errors.Is(err, ErrAttachment) || permanent(err):
			c.log.Warn("dropping the attachment of a disappearing message", "err", err)
			if err := c.db.update(ctx, func(tx *tx) error { return tx.dropLocalFile(id) }); err != nil {
				return err
			}
		default:
			return fmt.Errorf("client: download the attachment of a disappearing message: %w", err)
		}
	}
	return nil
}

// fetchAttachment downloads one attachment into the local store, and
// checks it as it goes.
func (c *Client) fetchAttachment(ctx context.Context, conv, id string) error {
	var m *Message
	err := c.db.view(ctx, func(tx *tx) (err error) {
		m, err = tx.message(conv, id)
		return err
	})
	if err != nil {
		return err
	}
	if m == nil || m.Attachment == nil {
		return c.db.update(ctx, func(tx *tx) error { return tx.dropLocalFile(id) })
	}
	body, err := c.getBlob(ctx, m.Attachment.BlobID)
	if err != nil {
		return err
	}
	defer body.Close()
	w := &fileWriter{c: c, ctx: ctx, id: id}
	src := io.TeeReader(io.LimitReader(body, EncryptedSize(m.Attachment.Size)+1), w)
	if err := decryptAttachment(io.Discard, src, m.Attachment); err != nil {
		return err
	}
	return w.close()
}

// getBlob opens a blob on the server.
func (c *Client) getBlob(ctx context.Context, id string) (io.ReadCloser, error) {
	auth, err := c.authorization()
	if err != nil {
		return nil, err
	}
	tr, err := c.transport()
	if err != nil {
		return nil, err
	}
	return tr.Do(ctx, &Request{Method: "GET", Path: pathWith(proto.PathBlob, "id", id), Auth: auth, Size: -1})
}

// fileWriter writes a blob into tableFiles, a few chunks per transaction.
type fileWriter struct {
	c    *Client
	ctx  context.Context
	id   string
	buf  []byte // bytes not yet written
	rows int    // chunks written
}

// chunkSize is the size of a blob's chunk, sealed.
const chunkSize = attachmentChunk + attachmentTag

func (w *fileWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	if len(w.buf) >= fileRowsPerTx*chunkSize {
		if err := w.flush(false); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// close writes what is left, and ends the download.
func (w *fileWriter) close() error { return w.flush(true) }

// flush writes the whole chunks buffered, and with last the rest and
// the end of the download. It stops with errFileGone if the message
// disappeared meanwhile (its download is no longer queued).
func (w *fileWriter) flush(last bool) error {
	return w.c.db.update(w.ctx, func(tx *tx) error {
		if _, ok, err := tx.raw.Get(tableFetch, w.id); err != nil || !ok {
			return errors.Join(err, errFileGone)
		}
		rows, buf := w.rows, w.buf
		for len(buf) >= chunkSize || last && len(buf) > 0 {
			n := min(len(buf), chunkSize)
			if err := tx.putBytes(tableFiles, fileKey(w.id, rows), buf[:n]); err != nil {
				return err
			}
			rows, buf = rows+1, buf[n:]
		}
		if last {
			if err := tx.delete(tableFetch, w.id); err != nil {
				return err
			}
		}
		w.rows, w.buf = rows, append(w.buf[:0], buf...)
		return nil
	})
}

// localFile returns a reader of the local copy of a message's blob, in
// the transaction, or nil if there is none (yet).
func (tx *tx) localFile(id string) (io.Reader, error) {
	if _, ok, err := tx.raw.Get(tableFetch, id); err != nil || ok {
		return nil, err
	}
	if _, ok, err := tx.raw.Get(tableFiles, fileKey(id, 0)); err != nil || !ok {
		return nil, err
	}
	return &fileReader{tx: tx, id: id}, nil
}

// fileReader reads a blob from tableFiles.
type fileReader struct {
	tx  *tx
	id  string
	i   int
	cur []byte
}

func (r *fileReader) Read(p []byte) (int, error) {
	for len(r.cur) == 0 {
		b, ok, err := r.tx.getBytes(tableFiles, fileKey(r.id, r.i))
		if err != nil {
			return 0, err
		}
		if !ok {
			return 0, io.EOF
		}
		r.cur, r.i = b, r.i+1
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	return n, nil
}
