package proc

import "errors"

// errBadStat is returned for a /proc/PID/stat line that cannot be parsed.
var errBadStat = errors.New("malformed stat line")

// parseStat extracts the state (field 3) and the start time (field 22) from
// a /proc/PID/stat line. The command name (field 2) is in parentheses and
// may itself contain spaces and parentheses, so fields are counted from the
// last ')'.
func parseStat(b []byte) (state byte, start uint64, err error) {
	i := len(b) - 1
	for i >= 0 && b[i] != ')' {
		i--
	}
	if i < 0 {
		return 0, 0, errBadStat
	}
	b = b[i+1:]
	field := 2 // the field just closed
	for len(b) > 0 {
		for len(b) > 0 && b[0] == ' ' {
			b = b[1:]
		}
		j := 0
		for j < len(b) && b[j] != ' ' && b[j] != '\n' {
			j++
		}
		if j == 0 {
			break
		}
		field++
		tok := b[:j]
		b = b[j:]
		switch field {
		case 3:
			if len(tok) != 1 {
				return 0, 0, errBadStat
			}
			state = tok[0]
		case 22:
			var v uint64
			for _, c := range tok {
				if c < '0' || c > '9' || v > (1<<64-1)/10-1 {
					return 0, 0, errBadStat
				}
				v = v*10 + uint64(c-'0')
			}
			return state, v, nil
		}
	}
	return 0, 0, errBadStat
}

// parseStatPID returns field 1 of a /proc/PID/stat line, the pid.
func parseStatPID(b []byte) (int32, error) {
	var v int32
	i := 0
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		if v > (1<<31-1)/10-1 {
			return 0, errBadStat
		}
		v = v*10 + int32(b[i]-'0')
	}
	if i == 0 || i >= len(b) || b[i] != ' ' {
		return 0, errBadStat
	}
	return v, nil
}
