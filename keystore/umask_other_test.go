//go:build !unix

package keystore

func setUmask(int) (restore func()) { return func() {} }
