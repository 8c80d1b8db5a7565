package jsonipc

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// maxDepth is the deepest nesting accepted, the same bound encoding/json
// uses, so that both agree on which documents are valid.
const maxDepth = 10000

// envelope holds the raw JSON text of the top-level members of one
// message that the protocol looks at. A nil field means the key was
// absent. Other members are skipped but still validated.
type envelope struct {
	id      []byte // ipcReqID
	uri     []byte // uri
	data    []byte // data
	code    []byte // code (responses)
	message []byte // message (responses)
}

// errNotObject reports a valid JSON line that is not an object.
var errNotObject = errors.New("message is not a JSON object")

// syntaxError reports invalid JSON with the byte offset of the problem.
type syntaxError struct {
	off int
	msg string
}

func (e *syntaxError) Error() string {
	return fmt.Sprintf("invalid JSON at byte %d: %s", e.off, e.msg)
}

// parseEnvelope validates line as exactly one JSON value (with optional
// surrounding whitespace) and, when it is an object, records where its
// protocol members are. It never decodes data: the hot path only needs
// their positions. When a key repeats, the last one wins, as with
// encoding/json.
func parseEnvelope(line []byte, e *envelope) error {
	*e = envelope{}
	p := parser{b: line}
	p.skipWS()
	if p.i >= len(p.b) {
		return p.fail("empty message")
	}
	if p.b[p.i] != '{' {
		if err := p.value(0); err != nil {
			return err
		}
		p.skipWS()
		if p.i != len(p.b) {
			return p.fail("unexpected data after top-level value")
		}
		return errNotObject
	}
	p.i++
	p.skipWS()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
	} else {
		for {
			p.skipWS()
			ks := p.i
			if err := p.str(); err != nil {
				return err
			}
			key := p.b[ks:p.i]
			p.skipWS()
			if p.i >= len(p.b) || p.b[p.i] != ':' {
				return p.fail("expected ':' after object key")
			}
			p.i++
			p.skipWS()
			vs := p.i
			if err := p.value(1); err != nil {
				return err
			}
			e.set(key, p.b[vs:p.i])
			p.skipWS()
			if p.i >= len(p.b) {
				return p.fail("unexpected end of message in object")
			}
			if p.b[p.i] == ',' {
				p.i++
				continue
			}
			if p.b[p.i] != '}' {
				return p.fail("expected ',' or '}' in object")
			}
			p.i++
			break
		}
	}
	p.skipWS()
	if p.i != len(p.b) {
		return p.fail("unexpected data after top-level object")
	}
	return nil
}

// leadingID returns the ipcReqID of a message of which only the start is
// known (a line over max_message_size), when the id comes before the
// first member that the start cuts off, as every pixl-ipc client writes
// it. It returns nil when no id is found there, or it is falsy.
func leadingID(start []byte) []byte {
	p := parser{b: start}
	p.skipWS()
	if p.i >= len(p.b) || p.b[p.i] != '{' {
		return nil
	}
	p.i++
	var e envelope
	for {
		p.skipWS()
		ks := p.i
		if p.str() != nil {
			return nil
		}
		key := p.b[ks:p.i]
		p.skipWS()
		if p.i >= len(p.b) || p.b[p.i] != ':' {
			return nil
		}
		p.i++
		p.skipWS()
		vs := p.i
		if p.value(1) != nil {
			return nil
		}
		e.set(key, p.b[vs:p.i])
		if e.id != nil {
			if !truthy(e.id) {
				return nil
			}
			return e.id
		}
		p.skipWS()
		if p.i >= len(p.b) || p.b[p.i] != ',' {
			return nil
		}
		p.i++
	}
}

// set records val under key when key is one of the protocol's members.
// key is the quoted JSON string; escapes in it are rare, so only then is
// it decoded.
func (e *envelope) set(key, val []byte) {
	k := key[1 : len(key)-1]
	if bytes.IndexByte(k, '\\') >= 0 {
		var s string
		if json.Unmarshal(key, &s) != nil {
			return
		}
		k = []byte(s)
	}
	switch string(k) {
	case "ipcReqID":
		e.id = val
	case "uri":
		e.uri = val
	case "data":
		e.data = val
	case "code":
		e.code = val
	case "message":
		e.message = val
	}
}

// parser is a validating JSON skipper: it checks the grammar of RFC 8259
// as encoding/json.Valid does and moves past values without building them.
type parser struct {
	b []byte
	i int
}

func (p *parser) fail(msg string) error { return &syntaxError{off: p.i, msg: msg} }

func (p *parser) skipWS() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *parser) value(depth int) error {
	if p.i >= len(p.b) {
		return p.fail("unexpected end of message, expected a value")
	}
	switch c := p.b[p.i]; {
	case c == '"':
		return p.str()
	case c == '{':
		return p.object(depth + 1)
	case c == '[':
		return p.array(depth + 1)
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	case c == 't':
		return p.literal("true")
	case c == 'f':
		return p.literal("false")
	case c == 'n':
		return p.literal("null")
	default:
		return p.fail(fmt.Sprintf("invalid character %q looking for a value", c))
	}
}

func (p *parser) literal(lit string) error {
	if len(p.b)-p.i < len(lit) || string(p.b[p.i:p.i+len(lit)]) != lit {
		return p.fail("invalid literal, expected " + lit)
	}
	p.i += len(lit)
	return nil
}

func (p *parser) object(depth int) error {
	if depth > maxDepth {
		return p.fail("exceeded maximum nesting depth")
	}
	p.i++ // '{'
	p.skipWS()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		return nil
	}
	for {
		p.skipWS()
		if err := p.str(); err != nil {
			return err
		}
		p.skipWS()
		if p.i >= len(p.b) || p.b[p.i] != ':' {
			return p.fail("expected ':' after object key")
		}
		p.i++
		p.skipWS()
		if err := p.value(depth); err != nil {
			return err
		}
		p.skipWS()
		if p.i >= len(p.b) {
			return p.fail("unexpected end of message in object")
		}
		switch p.b[p.i] {
		case ',':
			p.i++
		case '}':
			p.i++
			return nil
		default:
			return p.fail("expected ',' or '}' in object")
		}
	}
}

func (p *parser) array(depth int) error {
	if depth > maxDepth {
		return p.fail("exceeded maximum nesting depth")
	}
	p.i++ // '['
	p.skipWS()
	if p.i < len(p.b) && p.b[p.i] == ']' {
		p.i++
		return nil
	}
	for {
		p.skipWS()
		if err := p.value(depth); err != nil {
			return err
		}
		p.skipWS()
		if p.i >= len(p.b) {
			return p.fail("unexpected end of message in array")
		}
		switch p.b[p.i] {
		case ',':
			p.i++
		case ']':
			p.i++
			return nil
		default:
			return p.fail("expected ',' or ']' in array")
		}
	}
}

// strSafe marks the bytes that need no attention inside a string.
var strSafe = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

func (p *parser) str() error {
	if p.i >= len(p.b) || p.b[p.i] != '"' {
		return p.fail("expected a string")
	}
	p.i++
	b := p.b
	for i := p.i; i < len(b); {
		// Skip eight plain bytes at a time: most of a payload is string
		// content, and this is where validation spends its time.
		for i+32 <= len(b) {
			w := b[i : i+32]
			if special8(binary.LittleEndian.Uint64(w)) || special8(binary.LittleEndian.Uint64(w[8:])) ||
				special8(binary.LittleEndian.Uint64(w[16:])) || special8(binary.LittleEndian.Uint64(w[24:])) {
				break
			}
			i += 32
		}
		for i+8 <= len(b) && !special8(binary.LittleEndian.Uint64(b[i:])) {
			i += 8
		}
		if i >= len(b) {
			break
		}
		c := b[i]
		if strSafe[c] {
			i++
			continue
		}
		switch {
		case c == '"':
			p.i = i + 1
			return nil
		case c == '\\':
			if i+1 >= len(b) {
				p.i = i
				return p.fail("unterminated escape in string")
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) || !isHex(b[i+2]) || !isHex(b[i+3]) || !isHex(b[i+4]) || !isHex(b[i+5]) {
					p.i = i
					return p.fail(`invalid \u escape in string`)
				}
				i += 6
			default:
				p.i = i
				return p.fail("invalid escape in string")
			}
		default:
			p.i = i
			return p.fail("control character in string")
		}
	}
	p.i = len(b)
	return p.fail("unterminated string")
}

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// special8 reports whether any of the eight bytes in x is a quote, a
// backslash or a control character (below 0x20).
func special8(x uint64) bool {
	q := x ^ (lsb * '"')
	bs := x ^ (lsb * '\\')
	return ((q-lsb)&^q|(bs-lsb)&^bs|(x-lsb*0x20)&^x)&msb != 0
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func (p *parser) number() error {
	b := p.b
	i := p.i
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		p.i = i
		return p.fail("invalid number")
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			p.i = i
			return p.fail("invalid number: expected digit after '.'")
		}
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			p.i = i
			return p.fail("invalid number: expected digit in exponent")
		}
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	}
	p.i = i
	return nil
}

// truthy reports whether a raw JSON value is truthy in JavaScript terms,
// which decides whether pixl-ipc echoes an id or answers no_uri: absent,
// null, false, "" and any zero number are falsy.
func truthy(v []byte) bool {
	if len(v) == 0 {
		return false
	}
	switch v[0] {
	case 'n', 'f':
		return false
	case '"':
		return len(v) > 2
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		for _, c := range v {
			switch c {
			case '1', '2', '3', '4', '5', '6', '7', '8', '9':
				return true
			case 'e', 'E':
				return false // only the mantissa decides zero
			}
		}
		return false
	}
	return true
}

// uriString returns the uri member as a Go string. A JSON string is
// unquoted; any other value is used as its JSON text, as JavaScript's
// String() would for numbers and literals.
func uriString(v []byte) (string, error) {
	if len(v) == 0 || v[0] != '"' {
		return string(v), nil
	}
	if bytes.IndexByte(v, '\\') < 0 && utf8.Valid(v) {
		return string(v[1 : len(v)-1]), nil
	}
	// Escapes, or invalid UTF-8 that becomes U+FFFD as in Node.
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return "", err
	}
	return s, nil
}
