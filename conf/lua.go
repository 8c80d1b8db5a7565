package conf

import "strings"

// rawLua reads the body of a *_by_lua_block up to the "}" that closes it,
// the "{" having just been read. The body is returned byte for byte.
//
// It knows just enough Lua to find that brace: braces inside quoted
// strings, long strings ([[ ]], [==[ ]==]) and comments (-- to the end of
// the line, --[[ ]] long comments) do not count.
func (l *lexer) rawLua(name string, open Pos) (string, error) {
	start := l.off
	depth := 1
	for !l.eof() {
		c := l.src[l.off]
		switch {
		case c == '{':
			depth++
			l.advance()
		case c == '}':
			depth--
			if depth == 0 {
				raw := string(l.src[start:l.off])
				l.advance()
				return raw, nil
			}
			l.advance()
		case c == '"' || c == '\'':
			if err := l.luaString(c); err != nil {
				return "", err
			}
		case c == '[':
			if level, ok := l.longBracket(); ok {
				if err := l.luaLong(level, "long string"); err != nil {
					return "", err
				}
			} else {
				l.advance()
			}
		case c == '-' && l.off+1 < len(l.src) && l.src[l.off+1] == '-':
			l.advance()
			l.advance()
			if level, ok := l.longBracket(); ok {
				if err := l.luaLong(level, "long comment"); err != nil {
					return "", err
				}
				continue
			}
			for !l.eof() && l.src[l.off] != '\n' {
				l.advance()
			}
		default:
			l.advance()
		}
	}
	return "", errorf(l.pos(), "unexpected end of file, expecting \"}\" to close the %q block opened at %d:%d", name, open.Line, open.Col)
}

// longBracket reports whether an opening long bracket ("[", any number of
// "=", "[") starts at the current offset, and its level (number of "=").
func (l *lexer) longBracket() (level int, ok bool) {
	i := l.off + 1
	for i < len(l.src) && l.src[i] == '=' {
		i++
	}
	if i < len(l.src) && l.src[i] == '[' {
		return i - l.off - 1, true
	}
	return 0, false
}

// luaLong skips a long string or comment whose opening bracket of the
// given level starts at the current offset.
func (l *lexer) luaLong(level int, what string) error {
	start := l.pos()
	for range level + 2 {
		l.advance()
	}
	for !l.eof() {
		if l.src[l.off] == ']' {
			i := l.off + 1
			for i < len(l.src) && l.src[i] == '=' {
				i++
			}
			if i < len(l.src) && l.src[i] == ']' && i-l.off-1 == level {
				for l.off <= i {
					l.advance()
				}
				return nil
			}
		}
		l.advance()
	}
	return errorf(start, "unfinished Lua %s in Lua block, expecting %q", what, "]"+strings.Repeat("=", level)+"]")
}

// luaString skips a quoted Lua string starting at the current offset. As
// in Lua, a backslash escapes the next byte and an unescaped newline ends
// the string with an error.
func (l *lexer) luaString(q byte) error {
	start := l.pos()
	l.advance()
	for !l.eof() {
		c := l.src[l.off]
		switch c {
		case q:
			l.advance()
			return nil
		case '\n':
			return errorf(start, "unfinished Lua string in Lua block, expecting closing %q before the end of the line", string(q))
		case '\\':
			l.advance()
			if l.eof() {
				continue
			}
		}
		l.advance()
	}
	return errorf(start, "unfinished Lua string in Lua block, expecting closing %q", string(q))
}
