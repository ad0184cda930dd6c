package txn

import "unicode/utf16"

func utf16Encode(s string) []uint16 { return utf16.Encode([]rune(s)) }
