//go:build !unix

package fsread

import "os"

// Open is os.Open: the offer to the poller that Open avoids is made on Unix systems.
func Open(path string) (*os.File, error) { return os.Open(path) }
