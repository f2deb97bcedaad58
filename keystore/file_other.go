//go:build !unix

package keystore

import (
	"os"
	"time"
)

// staleTemp: without flock, a temp file older than this is taken for a killed writer's.
const staleTemp = time.Hour

// renameOpenFile: Windows cannot rename a file that is open.
const renameOpenFile = false

func lockTemp(*os.File) error { return nil }

func removeAbandoned(path string) bool {
	if fi, err := os.Lstat(path); err == nil && fi.Mode().IsRegular() && time.Since(fi.ModTime()) > staleTemp {
		return os.Remove(path) == nil
	}
	return false
}
