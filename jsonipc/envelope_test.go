package jsonipc

import "testing"

func TestLeadingID(t *testing.T) {
	for _, tc := range []struct{ start, want string }{
		{`{"ipcReqID":"rq1","uri":"/x","data":"xxxx`, `"rq1"`},
		{` { "uri" : "/x" , "ipcReqID" : 12.50 , "data":{"a":[1,`, `12.50`},
		{`{"uri":"/x","data":"xxxx`, ``},              // cut off before any id
		{`{"data":"xxxx","ipcRe`, ``},                 // the id comes after the cut
		{`{"ipcReqID":0,"data":"xx`, ``},              // falsy ids are answered as null
		{`{"ipcReqID":"","data":"xx`, ``},             // likewise
		{`{"ipcReqID":"rq`, ``},                       // the id itself is cut
		{`["ipcReqID","rq1"`, ``},                     // not an object
		{`{"ipc\u0052eqID":"esc","data":"x`, `"esc"`}, // escaped key
		{``, ``},
	} {
		if got := string(leadingID([]byte(tc.start))); got != tc.want {
			t.Errorf("leadingID(%q) = %q, want %q", tc.start, got, tc.want)
		}
	}
}
