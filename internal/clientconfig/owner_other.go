//go:build !unix

package clientconfig

import "io/fs"

// fileOwner: files have no numeric owner to keep here; sudo does not exist.
func fileOwner(fs.FileInfo) (owner, bool) { return owner{}, false }

// dirWritable: no sudo to suggest here.
func dirWritable(string) bool { return true }
