package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/hush-chat/hush/client"
)

// Attachment subcommands: attach, download.

func init() {
	commands["attach"] = command{"send a file", runAttach}
	commands["download"] = command{"download a message's file", runDownload}
}

// progressMin is the size from which a progress bar is drawn.
const progressMin = 1 << 20

// progressBar draws on w (a terminal) as a transfer goes.
func progressBar(w io.Writer, label string) func(done, total int64) {
	last := -1
	return func(done, total int64) {
		pct := int(done * 100 / max(total, 1))
		if pct == last {
			return
		}
		last = pct
		const width = 30
		fill := pct * width / 100
		fmt.Fprintf(w, "\r%s [%s%s] %3d%% %s", label, strings.Repeat("█", fill), strings.Repeat("·", width-fill), pct, humanSize(total))
		if done >= total {
			fmt.Fprintln(w)
		}
	}
}

func runAttach(ctx context.Context, stdout, stderr io.Writer, args []string) error {
	c := newClientCmd("attach", "attach [flags] TO FILE",
		"Encrypts FILE on this device with a fresh key, uploads the ciphertext, and sends the key and\n"+
			"the file's digest to TO (a user, a group name or a conversation id) inside the conversation.", stdout, stderr)
	caption := c.fs.String("m", "", "a `CAPTION` to send with the file")
	pos, err := c.parse(args, 2, 2)
	if err != nil {
		return err
	}
	f, err := os.Open(pos[1])
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", pos[1])
	}
	ctype := mime.TypeByExtension(filepath.Ext(fi.Name()))
	if ctype == "" {
		head := make([]byte, 512)
		n, _ := io.ReadFull(f, head)
		ctype = http.DetectContentType(head[:n])
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return err
		}
	}
	cl, err := c.syncedClient(ctx)
	if err != nil {
		return err
	}
	defer cl.Close()
	cv, err := findConversation(ctx, cl, pos[0], true)
	if err != nil {
		return err
	}
	file := client.File{Name: fi.Name(), ContentType: ctype, Size: fi.Size(), Body: f}
	if fi.Size() >= progressMin && isTerminal(stderr) && !c.json {
		file.Progress = progressBar(stderr, "uploading")
	}
	m, err := cl.SendAttachment(ctx, cv.ID, file, *caption)
	if err != nil {
		return err
	}
	return c.printSent(m)
}

func runDownload(ctx context.Context, stdout, stderr io.Writer, args []string) error {
	c := newClientCmd("download", "download [flags] MSGID [DIR]",
		"Downloads and decrypts a message's file into DIR (default: the current directory), and\n"+
			"checks it against the digest its sender sent. A file that does not check is not kept.", stdout, stderr)
	pos, err := c.parse(args, 1, 2)
	if err != nil {
		return err
	}
	dir := "."
	if len(pos) == 2 {
		dir = pos[1]
	}
	cl, err := c.syncedClient(ctx)
	if err != nil {
		return err
	}
	defer cl.Close()
	m, err := cl.Message(ctx, pos[0])
	if err != nil {
		return err
	}
	if m.Attachment == nil {
		return errors.New("that message has no file")
	}
	tmp, err := os.CreateTemp(dir, ".hush-download-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	var progress func(done, total int64)
	if m.Attachment.Size >= progressMin && isTerminal(stderr) && !c.json {
		progress = progressBar(stderr, "downloading")
	}
	_, err = cl.DownloadAttachment(ctx, m.ID, tmp, progress)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	dst, err := freeName(dir, safeName(m.Attachment.Name))
	if err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return err
	}
	if c.json {
		return c.printJSON(map[string]any{"path": dst, "size": m.Attachment.Size, "content_type": m.Attachment.ContentType})
	}
	fmt.Fprintf(stdout, "saved %s (%s, digest checked)\n", dst, humanSize(m.Attachment.Size))
	return nil
}

// safeName makes a sender's file name safe to create: no directories, no
// hidden or empty names.
func safeName(name string) string {
	name = filepath.Base(strings.ReplaceAll(name, "\\", "/"))
	name = strings.TrimLeft(name, ".")
	name = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '/' {
			return '_'
		}
		return r
	}, name)
	if name == "" {
		name = "attachment"
	}
	return name
}

// freeName returns dir/name, or dir/name-N.ext if that exists.
func freeName(dir, name string) (string, error) {
	ext := filepath.Ext(name)
	stem := strings.TrimSuffix(name, ext)
	for i := 0; i < 1000; i++ {
		p := filepath.Join(dir, name)
		if i > 0 {
			p = filepath.Join(dir, fmt.Sprintf("%s-%d%s", stem, i, ext))
		}
		if _, err := os.Lstat(p); errors.Is(err, os.ErrNotExist) {
			return p, nil
		}
	}
	return "", fmt.Errorf("no free file name for %s in %s", name, dir)
}
