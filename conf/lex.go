package conf

import (
	"fmt"
	"unicode/utf8"
)

type tokKind uint8

const (
	tokEOF   tokKind = iota
	tokWord          // a bare or quoted word; text holds its value
	tokSemi          // ;
	tokOpen          // {
	tokClose         // }
)

type token struct {
	kind tokKind
	text string
	pos  Pos
}

// describe names the token the way error messages quote it.
func (t token) describe() string {
	switch t.kind {
	case tokEOF:
		return "end of file"
	case tokSemi:
		return `";"`
	case tokOpen:
		return `"{"`
	case tokClose:
		return `"}"`
	}
	return fmt.Sprintf("%q", t.text)
}

// lexer splits nginx-style configuration text into tokens. It keeps the
// line and column of the next byte so that every token and error knows
// where it is.
type lexer struct {
	file string
	src  []byte
	off  int
	line int
	col  int
	buf  []byte // scratch space for a word being unescaped
}

func newLexer(file string, src []byte) *lexer {
	return &lexer{file: file, src: src, line: 1, col: 1}
}

func (l *lexer) pos() Pos { return Pos{File: l.file, Line: l.line, Col: l.col} }

func (l *lexer) eof() bool { return l.off >= len(l.src) }

// advance moves past one byte. Columns count characters, so UTF-8
// continuation bytes do not move the column.
func (l *lexer) advance() {
	c := l.src[l.off]
	l.off++
	switch {
	case c == '\n':
		l.line++
		l.col = 1
	case c&0xC0 != 0x80:
		l.col++
	}
}

// char quotes the character at the current offset for an error message.
func (l *lexer) char() string {
	r, _ := utf8.DecodeRune(l.src[l.off:])
	return fmt.Sprintf("%q", string(r))
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// skipSpace skips whitespace and comments. A comment starts with "#" where
// a token could start and runs to the end of the line.
func (l *lexer) skipSpace() {
	for !l.eof() {
		switch c := l.src[l.off]; {
		case isSpace(c):
			l.advance()
		case c == '#':
			for !l.eof() && l.src[l.off] != '\n' {
				l.advance()
			}
		default:
			return
		}
	}
}

// next returns the next token.
func (l *lexer) next() (token, error) {
	l.skipSpace()
	pos := l.pos()
	if l.eof() {
		return token{kind: tokEOF, pos: pos}, nil
	}
	switch c := l.src[l.off]; c {
	case ';':
		l.advance()
		return token{kind: tokSemi, pos: pos}, nil
	case '{':
		l.advance()
		return token{kind: tokOpen, pos: pos}, nil
	case '}':
		l.advance()
		return token{kind: tokClose, pos: pos}, nil
	case '"', '\'':
		return l.quoted(pos, c)
	}
	return l.bare(pos)
}

// unescape appends the meaning of the escape "\e" to buf. Escapes that
// mean nothing here keep their backslash, so that regular expressions
// such as "\d+" survive unchanged, as in nginx.
func unescape(buf []byte, e byte) []byte {
	switch e {
	case 'n':
		return append(buf, '\n')
	case 't':
		return append(buf, '\t')
	case 'r':
		return append(buf, '\r')
	case '"', '\'', '\\', '$', ';', '{', '}', '#', ' ':
		return append(buf, e)
	}
	return append(buf, '\\', e)
}

// quoted reads a string in single or double quotes. It may span lines.
func (l *lexer) quoted(pos Pos, q byte) (token, error) {
	l.advance()
	l.buf = l.buf[:0]
	for {
		if l.eof() {
			return token{}, errorf(pos, "unexpected end of file, expecting closing %q of the string started here", string(q))
		}
		c := l.src[l.off]
		l.advance()
		switch {
		case c == q:
			// A quoted word must stand alone: "a"b is a typo, not "ab".
			if !l.eof() {
				if next := l.src[l.off]; !isSpace(next) && next != ';' && next != '{' && next != '}' {
					return token{}, errorf(l.pos(), "unexpected %s after quoted string, expecting space or \";\"", l.char())
				}
			}
			return token{kind: tokWord, text: string(l.buf), pos: pos}, nil
		case c == '\\':
			if l.eof() {
				continue // reported as end of file above
			}
			e := l.src[l.off]
			l.advance()
			l.buf = unescape(l.buf, e)
		default:
			l.buf = append(l.buf, c)
		}
	}
}

// bare reads an unquoted word. It ends at whitespace, ";", "{" or "}",
// except that "${name}" is kept whole as nginx does for variables.
func (l *lexer) bare(pos Pos) (token, error) {
	l.buf = l.buf[:0]
	dollar := false // the previous character was an unescaped "$"
	for !l.eof() {
		c := l.src[l.off]
		switch {
		case c == '{' && dollar:
			if err := l.variable(); err != nil {
				return token{}, err
			}
			dollar = false
			continue
		case isSpace(c) || c == ';' || c == '{' || c == '}':
			return token{kind: tokWord, text: string(l.buf), pos: pos}, nil
		case c == '\\':
			l.advance()
			if l.eof() {
				return token{}, errorf(l.pos(), `unexpected end of file after "\", expecting a character to escape`)
			}
			e := l.src[l.off]
			l.advance()
			l.buf = unescape(l.buf, e)
			dollar = false
			continue
		}
		l.buf = append(l.buf, c)
		l.advance()
		dollar = c == '$'
	}
	return token{kind: tokWord, text: string(l.buf), pos: pos}, nil
}

// variable copies "{name}" after a "$" into the word being read.
func (l *lexer) variable() error {
	start := l.pos()
	for !l.eof() {
		c := l.src[l.off]
		if isSpace(c) || c == ';' || c == '{' && l.buf[len(l.buf)-1] != '$' {
			break
		}
		l.buf = append(l.buf, c)
		l.advance()
		if c == '}' {
			return nil
		}
	}
	return errorf(start, `unterminated "${", expecting "}"`)
}
