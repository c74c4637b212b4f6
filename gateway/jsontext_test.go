package gateway

import "testing"

func TestLoneSurrogate(t *testing.T) {
	t.Parallel()
	for text, lone := range map[string]bool{
		`{"name":"\ud800x"}`:             true,
		`{"name":"\udc00"}`:              true,
		`{"name":"x\uD83D"}`:             true,
		`{"name":"\ud83d\ude00"}`:        false, // 😀, a whole pair
		`{"name":"\u00e9t\u00e9"}`:       false,
		`{"name":"\\ud800"}`:             false, // an escaped backslash, then text
		`{"name":"\\\ud800"}`:            true,
		`{"name":"\ud800\u0041"}`:        true,
		`{"name":"plain", "n": 1}`:       false,
		`{"a":"\ud800\udc00\udc00"}`:     true,
		`{"query":"{ x }","v":"\n\t\""}`: false,
	} {
		if got := loneSurrogate([]byte(text)); got != lone {
			t.Errorf("loneSurrogate(%s) = %v, want %v", text, got, lone)
		}
	}
}
