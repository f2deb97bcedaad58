package clientconfig

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// owner of a file: uid and gid; -1 keeps the process's own id.
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

// rootMayWrite refuses, when this process is root, a path that another user could steer:
// every directory on the way (links followed, each link root's own) must be root's and not
// writable by group or others, unless sticky (/tmp: others cannot replace root's entries
// there). Otherwise a user who owns ~/.docker, or a link in it, would choose where root
// creates or rewrites a file (CONTRACT 3a). Under sudo the user's own files are written by
// the user (configure re-executes as the user), so root has no business in the user's tree.
// Not root: nothing to check, the kernel's permissions are the user's own.
func rootMayWrite(path string) error {
	if os.Geteuid() != 0 { // -1 where there are no uids
		return nil
	}
	return walkRootOwned(filepath.Clean(path), 0)
}

func walkRootOwned(path string, depth int) error {
	if depth > 40 {
		return fmt.Errorf("%s: too many levels of symbolic links", path)
	}
	if !filepath.IsAbs(path) {
		return fmt.Errorf("%s is not an absolute path", path)
	}
	parts := strings.Split(strings.TrimPrefix(path, "/"), "/")
	cur := "/"
	for i, p := range parts {
		next := filepath.Join(cur, p)
		fi, err := os.Lstat(next)
		if errors.Is(err, fs.ErrNotExist) {
			return nil // root creates the rest, root's own
		}
		if err != nil {
			return err
		}
		o, ok := fileOwner(fi)
		last := i == len(parts)-1
		switch {
		case !ok:
			return nil
		case fi.Mode()&fs.ModeSymlink != 0:
			if o.uid != 0 {
				return fmt.Errorf("not written: %s is a link owned by uid %d, and root does not follow another user's links; run configure as that user", next, o.uid)
			}
			dest, err := os.Readlink(next)
			if err != nil {
				return err
			}
			if !filepath.IsAbs(dest) {
				dest = filepath.Join(cur, dest)
			}
			return walkRootOwned(filepath.Join(append([]string{dest}, parts[i+1:]...)...), depth+1)
		case last && !fi.IsDir():
			return nil // the file itself is replaced by a rename in a directory root holds
		case o.uid != 0:
			return fmt.Errorf("not written: %s belongs to uid %d, and root does not write into another user's directories; run configure as that user", next, o.uid)
		case fi.Mode().Perm()&0o022 != 0 && fi.Mode()&fs.ModeSticky == 0:
			return fmt.Errorf("not written: %s is writable by others (mode %04o), who could redirect what root writes there", next, fi.Mode().Perm())
		}
		cur = next
	}
	return nil
}

// mkdirPrivate creates dir and any missing parents with mode 0700.
func mkdirPrivate(dir string) error {
	if fi, err := os.Stat(dir); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%s is not a directory", dir)
		}
		return nil
	}
	if parent := filepath.Dir(dir); parent != dir {
		if err := mkdirPrivate(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return nil
}

// writeAtomic replaces path with data: a temporary file in the same directory gets the mode
// and owner, is written and synced, then renamed over path, so a reader (a concurrent
// docker pull) sees the old file or the new one, never a torn one. An existing file keeps its
// mode and owner; a new one gets 0600 and this process's owner.
func writeAtomic(path string, data []byte) error {
	mode := fs.FileMode(0o600)
	o := self
	switch fi, err := os.Stat(path); {
	case err == nil:
		mode = fi.Mode().Perm()
		if fo, ok := fileOwner(fi); ok {
			o = fo
		}
	case errors.Is(err, fs.ErrNotExist):
		if err := mkdirPrivate(filepath.Dir(path)); err != nil {
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
