//go:build !unix

package coredump

// disable does nothing where there are no core dumps to turn off (Windows keeps crash
// dumps under the user's own control through WER settings).
func disable() error { return nil }
