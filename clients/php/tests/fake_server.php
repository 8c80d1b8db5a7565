<?php
// A scripted server for what procwire serve cannot be made to do on
// demand. Usage: php fake_server.php SOCKET MODE. It serves one
// connection; for each request line it answers according to MODE:
//   push  - an id-less message and a null-id message, then the reply
//   split - for the first request: the reply's first half, a pause, then
//           the rest; later replies whole
//   blank - a blank line, then the reply
//   stall - reads nothing for 1.5 s, then exits
$path = $argv[1];
$mode = $argv[2];
@unlink($path);
$srv = stream_socket_server('unix://' . $path, $errno, $errstr);
if (!$srv) {
	fwrite(STDERR, "listen: $errstr\n");
	exit(1);
}
$c = stream_socket_accept($srv, 30);
if (!$c) {
	exit(1);
}
if ($mode === 'stall') {
	// Long enough for the client's write to time out.
	usleep(1500 * 1000);
	exit(0);
}
$n = 0;
while (($line = fgets($c)) !== false) {
	$req = json_decode($line, true);
	$reply = json_encode(array('ipcReqID' => $req['ipcReqID'], 'data' => $req['data'])) . "\n";
	switch ($mode) {
		case 'push':
			@fwrite($c, '{"event":"alert","n":1}' . "\n" . '{"ipcReqID":null,"n":2}' . "\n" . $reply);
			break;
		case 'split':
			if ($n++ > 0) {
				fwrite($c, $reply);
				break;
			}
			$half = intdiv(strlen($reply), 2);
			@fwrite($c, substr($reply, 0, $half));
			usleep(400 * 1000);
			@fwrite($c, substr($reply, $half));
			break;
		case 'blank':
			@fwrite($c, "\n" . $reply);
			break;
	}
}
fclose($c);
fclose($srv);
@unlink($path);
