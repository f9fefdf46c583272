//go:build !linux && !darwin

package storage

import "os"

// Without extended attributes, the local backend keeps no content type:
// downloads guess it from the name or the content.
func saveContentType(*os.File, string) {}

func loadContentType(*os.File) string { return "" }
