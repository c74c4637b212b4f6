package gateway

// loneSurrogate reports whether JSON text data escapes half of a UTF-16 surrogate pair on its own
// ("\ud800x", or a low half first). encoding/json turns one into U+FFFD without a word, so a
// client's broken text would be stored changed; the edges refuse it instead. data is scanned as
// JSON text: a backslash only ever appears inside a string, and begins an escape.
func loneSurrogate(data []byte) bool {
	for i := 0; i < len(data); i++ {
		if data[i] != '\\' || i+1 >= len(data) {
			continue
		}
		if data[i+1] != 'u' {
			i++ // a two-character escape: skip its second character (it may be a backslash)
			continue
		}
		r, ok := hex4(data, i+2)
		if !ok {
			return false // not JSON: the decoder says so
		}
		switch {
		case r >= 0xD800 && r < 0xDC00: // a high half: a low half must follow
			low, ok := -1, false
			if i+11 < len(data) && data[i+6] == '\\' && data[i+7] == 'u' {
				low, ok = hex4(data, i+8)
			}
			if !ok || low < 0xDC00 || low > 0xDFFF {
				return true
			}
			i += 11
		case r >= 0xDC00 && r <= 0xDFFF:
			return true
		default:
			i += 5
		}
	}
	return false
}

// hex4 reads the four hex digits of a \u escape at data[at:].
func hex4(data []byte, at int) (int, bool) {
	if at+4 > len(data) {
		return 0, false
	}
	v := 0
	for _, c := range data[at : at+4] {
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | int(c-'0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | int(c-'a'+10)
		case c >= 'A' && c <= 'F':
			v = v<<4 | int(c-'A'+10)
		default:
			return 0, false
		}
	}
	return v, true
}
