package archive

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// maxFile bounds one archived file when reading (the binary is the largest).
const maxFile = 1 << 30

// Top is the directory an archive's files are under in its .tar.gz.
func Top(a *Archive) string { return fmt.Sprintf("%s-run-%d", a.Index.Backfill, a.Index.RunID) }

// WriteTarGz writes files as a .tar.gz under directory top. It never
// overwrites: an archive is written once.
func WriteTarGz(out, top string, files map[string][]byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(out), ".archive-*.tmp")
	if err != nil {
		return fmt.Errorf("error creating archive %q: %w", out, err)
	}
	defer os.Remove(tmp.Name())
	gz := gzip.NewWriter(tmp)
	tw := tar.NewWriter(gz)
	for _, p := range sortedPaths(files) {
		mode := int64(0o444)
		if strings.HasPrefix(p, "binary/") && !strings.Contains(path.Base(p), ".") {
			mode = 0o555
		}
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: top + "/" + p, Mode: mode, Size: int64(len(files[p])), ModTime: time.Unix(0, 0).UTC(), Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("error writing %q into the archive: %w", p, err)
		}
		if _, err := tw.Write(files[p]); err != nil {
			return fmt.Errorf("error writing %q into the archive: %w", p, err)
		}
	}
	if err := errors.Join(tw.Close(), gz.Close(), tmp.Chmod(0o444), tmp.Sync(), tmp.Close()); err != nil {
		return fmt.Errorf("error writing archive %q: %w", out, err)
	}
	if _, err := os.Lstat(out); err == nil {
		return fmt.Errorf("error writing archive %q: it exists; archives are written once, choose another name", out)
	}
	if err := os.Link(tmp.Name(), out); err != nil {
		return fmt.Errorf("error writing archive %q: %w", out, err)
	}
	return nil
}

// WriteDir writes files into dir, which must not exist or be empty, and
// leaves them read-only.
func WriteDir(dir string, files map[string][]byte) error {
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return fmt.Errorf("error writing archive into %q: the directory is not empty; archives are written once", dir)
	}
	for _, p := range sortedPaths(files) {
		dst := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return fmt.Errorf("error writing %q: %w", dst, err)
		}
		mode := os.FileMode(0o444)
		if strings.HasPrefix(p, "binary/") && !strings.Contains(path.Base(p), ".") {
			mode = 0o555
		}
		if err := os.WriteFile(dst, files[p], mode); err != nil {
			return fmt.Errorf("error writing %q: %w", dst, err)
		}
	}
	// Directories last, deepest first, so that nothing can be added later.
	var dirs []string
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := os.Chmod(dirs[i], 0o555); err != nil {
			return fmt.Errorf("error making %q read-only: %w", dirs[i], err)
		}
	}
	return nil
}

// Read reads an archive: a .tar.gz written by WriteTarGz or a directory
// written by WriteDir. Paths are relative to the archive's top directory,
// which it returns for a .tar.gz ("" for a directory).
func Read(src string) (files map[string][]byte, top string, err error) {
	st, err := os.Stat(src)
	if err != nil {
		return nil, "", fmt.Errorf("error reading archive %q: %w", src, err)
	}
	if st.IsDir() {
		files, err := readDir(src)
		return files, "", err
	}
	return readTarGz(src)
}

func readDir(dir string) (map[string][]byte, error) {
	files := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("%q is not a regular file", p)
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		files[filepath.ToSlash(rel)], err = os.ReadFile(p)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("error reading archive %q: %w", dir, err)
	}
	return files, nil
}

func readTarGz(file string) (map[string][]byte, string, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, "", fmt.Errorf("error reading archive %q: %w", file, err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return nil, "", fmt.Errorf("error reading archive %q: not a .tar.gz: %w", file, err)
	}
	tr := tar.NewReader(gz)
	files := map[string][]byte{}
	top := ""
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, "", fmt.Errorf("error reading archive %q: %w", file, err)
		}
		if hdr.Typeflag == tar.TypeDir {
			continue
		}
		dir, rel, ok := strings.Cut(hdr.Name, "/")
		if hdr.Typeflag != tar.TypeReg || !ok || rel == "" || path.Clean(rel) != rel || strings.HasPrefix(rel, "../") || (top != "" && dir != top) {
			return nil, "", fmt.Errorf("error reading archive %q: entry %q is not a file under one top directory", file, hdr.Name)
		}
		top = dir
		if _, dup := files[rel]; dup {
			return nil, "", fmt.Errorf("error reading archive %q: %q appears twice", file, rel)
		}
		var buf bytes.Buffer
		if _, err := io.Copy(&buf, io.LimitReader(tr, maxFile)); err != nil {
			return nil, "", fmt.Errorf("error reading %q from archive %q: %w", rel, file, err)
		}
		files[rel] = buf.Bytes()
	}
	return files, top, nil
}
