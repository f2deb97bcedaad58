package clientconfig

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// owner of files and directories we create; -1 keeps the process's own id.
type owner struct{ uid, gid int }

var self = owner{-1, -1}

// resolve follows a symlinked config file (dotfile managers link them) to the file that is
// really replaced, as Docker does; a dangling link resolves to its target path.
func resolve(path string) (string, error) {
	for i := 0; i < 40; i++ {
		fi, err := os.Lstat(path)
		if errors.Is(err, fs.ErrNotExist) || (err == nil && fi.Mode()&fs.ModeSymlink == 0) {
			return path, nil
		}
		if err != nil {
			return "", err
		}
		dest, err := os.Readlink(path)
		if err != nil {
			return "", err
		}
		if !filepath.IsAbs(dest) {
			dest = filepath.Join(filepath.Dir(path), dest)
		}
		path = dest
	}
	return "", fmt.Errorf("%s: too many levels of symbolic links", path)
}

// mkdirOwned creates dir and any missing parents with mode 0700, each owned by o, so that
// `sudo configure` leaves no root-owned directory in the user's home.
func mkdirOwned(dir string, o owner) error {
	if fi, err := os.Stat(dir); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%s is not a directory", dir)
		}
		return nil
	}
	if parent := filepath.Dir(dir); parent != dir {
		if err := mkdirOwned(parent, o); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	if o != self {
		if err := os.Lchown(dir, o.uid, o.gid); err != nil {
			return err
		}
	}
	return nil
}

// writeAtomic replaces path with data: a temporary file in the same directory gets the mode
// and owner, is written and synced, then renamed over path, so a reader (a concurrent
// docker pull) sees the old file or the new one, never a torn one. An existing file keeps its
// mode and owner; a new one gets 0600 and owner o.
func writeAtomic(path string, data []byte, o owner) error {
	mode := fs.FileMode(0o600)
	switch fi, err := os.Stat(path); {
	case err == nil:
		mode = fi.Mode().Perm()
		if fo, ok := fileOwner(fi); ok {
			o = fo
		}
	case errors.Is(err, fs.ErrNotExist):
		if err := mkdirOwned(filepath.Dir(path), o); err != nil {
			return err
		}
	default:
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(mode); err != nil {
		return err
	}
	if o != self {
		if err := tmp.Chown(o.uid, o.gid); err != nil {
			return err
		}
	}
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	done = true
	if d, err := os.Open(filepath.Dir(path)); err == nil { // make the rename itself durable
		d.Sync()
		d.Close()
	}
	return nil
}
