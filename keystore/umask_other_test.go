//go:build !unix

package keystore

import "errors"

func setUmask(int) (restore func()) { return func() {} }

func syscallMkfifo(string) error { return errors.New("no FIFOs here") }
