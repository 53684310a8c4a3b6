// estargz-verify checks a blob with the upstream estargz library (Debian's
// golang-github-containerd-stargz-snapshotter-dev), as a lazy snapshotter reads it:
// open the footer and TOC, verify the TOC against the annotation's digest, then read
// every chunk of every file through the library's random-access reader and check it
// against its chunkDigest and each whole file against its digest.
//
//	estargz-verify BLOB TOC-DIGEST           prints "ok entries=N files=F chunks=C"
//	estargz-verify BLOB TOC-DIGEST cat NAME  prints the file's bytes, read by the library
package main

import (
	"bytes"
	"fmt"
	"io"
	"os"

	"github.com/containerd/stargz-snapshotter/estargz"
	digest "github.com/opencontainers/go-digest"
)

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "estargz-verify: "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	if len(os.Args) != 3 && !(len(os.Args) == 5 && os.Args[3] == "cat") {
		fail("usage: estargz-verify BLOB TOC-DIGEST [cat NAME]")
	}
	f, err := os.Open(os.Args[1])
	if err != nil {
		fail("%v", err)
	}
	st, err := f.Stat()
	if err != nil {
		fail("%v", err)
	}
	sr := io.NewSectionReader(f, 0, st.Size())
	r, err := estargz.Open(sr)
	if err != nil {
		fail("open: %v", err)
	}
	want, err := digest.Parse(os.Args[2])
	if err != nil {
		fail("toc digest: %v", err)
	}
	v, err := r.VerifyTOC(want)
	if err != nil {
		fail("VerifyTOC: %v", err)
	}
	if len(os.Args) == 5 {
		ra, err := r.OpenFile(os.Args[4])
		if err != nil {
			fail("OpenFile %s: %v", os.Args[4], err)
		}
		e, _ := r.Lookup(os.Args[4])
		buf := make([]byte, e.Size)
		if _, err := ra.ReadAt(buf, 0); err != nil && err != io.EOF {
			fail("read %s: %v", os.Args[4], err)
		}
		os.Stdout.Write(buf)
		return
	}
	entries, files, chunks := 0, 0, 0
	root, ok := r.Lookup("")
	if !ok {
		fail("no root directory in the TOC")
	}
	var walk func(dir string, e *estargz.TOCEntry)
	walk = func(dir string, e *estargz.TOCEntry) {
		e.ForeachChild(func(base string, child *estargz.TOCEntry) bool {
			entries++
			name := base
			if dir != "" {
				name = dir + "/" + base
			}
			switch child.Type {
			case "dir":
				walk(name, child)
			case "reg":
				files++
				chunks += check(r, v, name, child)
			}
			return true
		})
	}
	walk("", root)
	fmt.Printf("ok entries=%d files=%d chunks=%d\n", entries, files, chunks)
}

// check reads every chunk of a file through the library's reader, verifies each against
// its chunkDigest, and the whole file against its digest; returns the chunk count.
func check(r *estargz.Reader, v estargz.TOCEntryVerifier, name string, e *estargz.TOCEntry) int {
	if e.Size == 0 {
		return 0
	}
	ra, err := r.OpenFile(name)
	if err != nil {
		fail("OpenFile %s: %v", name, err)
	}
	var whole bytes.Buffer
	n := 0
	for off := int64(0); off < e.Size; {
		ce, ok := r.ChunkEntryForOffset(name, off)
		if !ok {
			fail("%s: no chunk at offset %d", name, off)
		}
		if ce.ChunkOffset != off {
			fail("%s: chunk for offset %d starts at %d", name, off, ce.ChunkOffset)
		}
		buf := make([]byte, ce.ChunkSize)
		if _, err := ra.ReadAt(buf, ce.ChunkOffset); err != nil && err != io.EOF {
			fail("%s: read chunk at %d: %v", name, off, err)
		}
		cv, err := v.Verifier(ce)
		if err != nil {
			fail("%s: verifier for chunk at %d: %v", name, off, err)
		}
		cv.Write(buf)
		if !cv.Verified() {
			fail("%s: chunk at %d does not match its chunkDigest %s", name, off, ce.ChunkDigest)
		}
		whole.Write(buf)
		off += ce.ChunkSize
		n++
	}
	if got := digest.FromBytes(whole.Bytes()).String(); got != e.Digest {
		fail("%s: content digest %s, TOC says %s", name, got, e.Digest)
	}
	return n
}
