//go:build !unix

package keystore

import "io/fs"

// fileOwner reports no owner where files have no uid (Windows, Plan 9, wasm).
func fileOwner(fs.FileInfo) (uid int, ok bool) { return 0, false }
