package dict

import (
	"math"
	"strconv"
)

// Type is the type of a stored value.
type Type uint8

// The value types of ngx.shared.DICT.
const (
	TypeNil    Type = iota // no value: Set with it deletes
	TypeString             // a byte string (Lua string)
	TypeNumber             // a float64 (Lua number)
	TypeBool               // a boolean
	TypeList               // a list of strings and numbers (LPush/RPush)
)

// String returns the Lua name of the type ("string", "number", ...).
func (t Type) String() string {
	switch t {
	case TypeNil:
		return "nil"
	case TypeString:
		return "string"
	case TypeNumber:
		return "number"
	case TypeBool:
		return "boolean"
	case TypeList:
		return "list"
	}
	return "Type(" + strconv.Itoa(int(t)) + ")"
}

// Value is one stored value: a string, a number or a boolean. The zero
// Value is nil. Values are small and passed by value; building and reading
// them does not allocate.
type Value struct {
	typ Type
	num float64 // TypeNumber; TypeBool: 1 or 0
	str string  // TypeString
}

// String returns a string Value.
func String(s string) Value { return Value{typ: TypeString, str: s} }

// Bytes returns a string Value holding a copy of b.
func Bytes(b []byte) Value { return Value{typ: TypeString, str: string(b)} }

// Number returns a number Value.
func Number(f float64) Value { return Value{typ: TypeNumber, num: f} }

// Bool returns a boolean Value.
func Bool(b bool) Value {
	v := Value{typ: TypeBool}
	if b {
		v.num = 1
	}
	return v
}

// Type reports the type of v.
func (v Value) Type() Type { return v.typ }

// IsNil reports whether v is the nil Value.
func (v Value) IsNil() bool { return v.typ == TypeNil }

// Number returns the number held by v, and whether v is a number.
func (v Value) Number() (float64, bool) { return v.num, v.typ == TypeNumber }

// Bool returns the boolean held by v, and whether v is a boolean.
func (v Value) Bool() (bool, bool) { return v.num != 0, v.typ == TypeBool }

// Str returns the string held by v, and whether v is a string.
func (v Value) Str() (string, bool) { return v.str, v.typ == TypeString }

// String returns v as Lua's tostring would: a string as is, a number in
// %.14g form ("inf", "-inf", "nan" for the special values), "true" or
// "false", and "nil".
func (v Value) String() string {
	switch v.typ {
	case TypeString:
		return v.str
	case TypeNumber, TypeBool:
		return string(v.AppendText(nil))
	}
	return "nil"
}

// AppendText appends v in its String form to b and returns the result.
func (v Value) AppendText(b []byte) []byte {
	switch v.typ {
	case TypeString:
		return append(b, v.str...)
	case TypeNumber:
		return appendNumber(b, v.num)
	case TypeBool:
		if v.num != 0 {
			return append(b, "true"...)
		}
		return append(b, "false"...)
	}
	return append(b, "nil"...)
}

func appendNumber(b []byte, f float64) []byte {
	switch {
	case math.IsInf(f, 1):
		return append(b, "inf"...)
	case math.IsInf(f, -1):
		return append(b, "-inf"...)
	case math.IsNaN(f):
		return append(b, "nan"...)
	}
	return strconv.AppendFloat(b, f, 'g', 14, 64)
}
